//! The frames between the server and a plugin's process.
//!
//! A frame is its length (u32, little endian, of what follows), a kind (u8), an id (u64), an
//! auxiliary number (u64), a method's length (u16) and the method, then the payload to the end.
//! Binary framing, so that a payload — already JSON — crosses as it is, never escaped again.

use std::io::{self, Read, Write};

/// The largest frame either side accepts: a plugin answer or request bigger than this is refused
/// (the rest of the host's limits are far below it).
pub(crate) const MAX_FRAME: usize = 64 * 1024 * 1024;

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// Server → plugin, first frame: load the library (payload: [`super::LoadRequest`] as JSON).
    Load = 1,
    /// Plugin → server: loaded and instantiated.
    Ready = 2,
    /// Plugin → server: the load failed (payload: the reason).
    LoadFailed = 3,
    /// Server → plugin: call `method` as call `id` (aux: milliseconds left, or `u64::MAX`).
    Call = 4,
    /// Plugin → server: call `id` answered (payload: the answer).
    ReplyOk = 5,
    /// Plugin → server: call `id` failed (method: the error kind; payload: its message).
    ReplyErr = 6,
    /// Plugin → server: host service `method` for call `aux`, as host call `id`.
    HostCall = 7,
    /// Server → plugin: host call `id` answered.
    HostOk = 8,
    /// Server → plugin: host call `id` failed (payload: the host error as JSON).
    HostErr = 9,
    /// Server → plugin: the server gave up on call `id`.
    Cancel = 10,
    /// Plugin → server: a log line (aux: level; method: target; payload: message).
    Log = 11,
}

impl Kind {
    fn from_u8(n: u8) -> Option<Kind> {
        use Kind::*;
        Some(match n {
            1 => Load,
            2 => Ready,
            3 => LoadFailed,
            4 => Call,
            5 => ReplyOk,
            6 => ReplyErr,
            7 => HostCall,
            8 => HostOk,
            9 => HostErr,
            10 => Cancel,
            11 => Log,
            _ => return None,
        })
    }
}

/// One frame, read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) kind: Kind,
    pub(crate) id: u64,
    pub(crate) aux: u64,
    pub(crate) method: String,
    pub(crate) payload: Vec<u8>,
}

impl Frame {
    /// The payload as text (frames carry JSON or messages), without a copy when it is valid
    /// UTF-8 (always, from the other side's own strings).
    pub(crate) fn into_text(self) -> String {
        String::from_utf8(self.payload)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

const HEAD: usize = 1 + 8 + 8 + 2;

/// Writes one frame and flushes it. Callers hold the writer's lock and give a buffered writer:
/// a frame that fits its buffer reaches the stream in one write.
pub(crate) fn write(
    out: &mut impl Write,
    kind: Kind,
    id: u64,
    aux: u64,
    method: &str,
    payload: &[u8],
) -> io::Result<()> {
    let method = &method.as_bytes()[..method.len().min(u16::MAX as usize)];
    let len = HEAD + method.len() + payload.len();
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a frame of {len} bytes is over the limit of {MAX_FRAME}"),
        ));
    }
    // Through the caller's buffer: one write for a frame that fits in it, no copy of its own.
    let mut head = [0u8; 4 + HEAD];
    head[..4].copy_from_slice(&(len as u32).to_le_bytes());
    head[4] = kind as u8;
    head[5..13].copy_from_slice(&id.to_le_bytes());
    head[13..21].copy_from_slice(&aux.to_le_bytes());
    head[21..23].copy_from_slice(&(method.len() as u16).to_le_bytes());
    out.write_all(&head)?;
    out.write_all(method)?;
    out.write_all(payload)?;
    out.flush()
}

/// Reads one frame; `Ok(None)` at a clean end of the stream.
pub(crate) fn read(input: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if !(HEAD..=MAX_FRAME).contains(&len) {
        return Err(bad(format!("a frame of {len} bytes")));
    }
    let mut head = [0u8; HEAD];
    input.read_exact(&mut head)?;
    let kind = Kind::from_u8(head[0]).ok_or_else(|| bad(format!("frame kind {}", head[0])))?;
    let id = u64::from_le_bytes(head[1..9].try_into().unwrap_or_default());
    let aux = u64::from_le_bytes(head[9..17].try_into().unwrap_or_default());
    let method_len = u16::from_le_bytes(head[17..19].try_into().unwrap_or_default()) as usize;
    if HEAD + method_len > len {
        return Err(bad(format!(
            "a method of {method_len} bytes in a frame of {len}"
        )));
    }
    let mut method = vec![0u8; method_len];
    input.read_exact(&mut method)?;
    let method = String::from_utf8(method)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    let mut payload = vec![0u8; len - HEAD - method_len];
    input.read_exact(&mut payload)?;
    Ok(Some(Frame {
        kind,
        id,
        aux,
        method,
        payload,
    }))
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("unreadable: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut wire = Vec::new();
        write(
            &mut wire,
            Kind::Call,
            7,
            250,
            "hooks.tool.pre_exec",
            b"{\"a\":1}",
        )
        .unwrap();
        write(&mut wire, Kind::ReplyOk, 7, 0, "", b"").unwrap();
        let mut input = wire.as_slice();
        let first = read(&mut input).unwrap().unwrap();
        assert_eq!(
            first,
            Frame {
                kind: Kind::Call,
                id: 7,
                aux: 250,
                method: "hooks.tool.pre_exec".into(),
                payload: b"{\"a\":1}".to_vec(),
            }
        );
        assert_eq!(read(&mut input).unwrap().unwrap().kind, Kind::ReplyOk);
        assert!(read(&mut input).unwrap().is_none());
    }

    #[test]
    fn frames_larger_than_the_buffer_and_odd_bytes_cross_whole() {
        let big = "x".repeat(100_000);
        let mut out = std::io::BufWriter::with_capacity(8192, Vec::new());
        write(&mut out, Kind::ReplyOk, 1, 0, "", big.as_bytes()).unwrap();
        write(&mut out, Kind::Log, 2, 3, "t\u{e9}", b"a\xffb").unwrap();
        let wire = out.into_inner().unwrap();
        let mut input = wire.as_slice();
        assert_eq!(read(&mut input).unwrap().unwrap().into_text(), big);
        let log = read(&mut input).unwrap().unwrap();
        assert_eq!((log.id, log.aux, log.method.as_str()), (2, 3, "t\u{e9}"));
        assert_eq!(log.into_text(), "a\u{fffd}b");
        assert!(read(&mut input).unwrap().is_none());
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        for wire in [
            vec![3, 0, 0, 0, 1, 2, 3],
            {
                let mut w = (HEAD as u32).to_le_bytes().to_vec();
                w.extend_from_slice(&[99; HEAD]);
                w
            },
            (MAX_FRAME as u32 + 1).to_le_bytes().to_vec(),
        ] {
            assert!(read(&mut wire.as_slice()).is_err(), "{wire:?}");
        }
    }
}
