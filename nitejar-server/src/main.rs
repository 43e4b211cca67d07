//! `nitejar`: the Nitejar server and its command line (see the library for all of it).

// Measured with perf under webhook load: glibc's allocator took about 11 % of the server's CPU time
// (many small allocations, freed on other threads than their own); with mimalloc, about 7 %.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    nitejar_server::main()
}
