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
    /// The payload as text (frames carry JSON or messages).
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

const HEAD: usize = 1 + 8 + 8 + 2;

/// Writes one frame in one `write_all` (callers hold the writer's lock).
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
    let mut buf = Vec::with_capacity(4 + len);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.push(kind as u8);
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&aux.to_le_bytes());
    buf.extend_from_slice(&(method.len() as u16).to_le_bytes());
    buf.extend_from_slice(method);
    buf.extend_from_slice(payload);
    out.write_all(&buf)?;
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
    let mut body = vec![0u8; len];
    input.read_exact(&mut body)?;
    let kind = Kind::from_u8(body[0]).ok_or_else(|| bad(format!("frame kind {}", body[0])))?;
    let id = u64::from_le_bytes(body[1..9].try_into().unwrap_or_default());
    let aux = u64::from_le_bytes(body[9..17].try_into().unwrap_or_default());
    let method_len = u16::from_le_bytes(body[17..19].try_into().unwrap_or_default()) as usize;
    if HEAD + method_len > len {
        return Err(bad(format!(
            "a method of {method_len} bytes in a frame of {len}"
        )));
    }
    let method = String::from_utf8_lossy(&body[HEAD..HEAD + method_len]).into_owned();
    let payload = body.split_off(HEAD + method_len);
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
