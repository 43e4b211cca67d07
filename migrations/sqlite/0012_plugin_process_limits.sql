-- The resource limits of a third-party plugin's own process (isolated execution), chosen by the
-- operator: address space in MiB and processor time in seconds over the process's life. NULL
-- follows the server's NITEJAR_PLUGIN_MEMORY_MIB / NITEJAR_PLUGIN_CPU_SECONDS. The other
-- backend's folder holds the same logical schema.
ALTER TABLE plugins ADD COLUMN memory_limit_mib BIGINT;
ALTER TABLE plugins ADD COLUMN cpu_limit_seconds BIGINT;
