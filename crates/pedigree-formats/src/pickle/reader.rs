//! Byte reader with absolute offsets that feeds opcodes to the machine the way each host does
//! (FORMATS-FACTS §1.2). The three [`ReadMode`]s differ only when FRAMEs and reads disagree:
//!
//! * `InMemory` (C `pickle.loads(bytes)`): FRAME checks that `n` bytes exist, then every read
//!   goes straight through. A *logical* frame is still tracked so that straddles and early
//!   frames are reported (they make the other readers diverge).
//! * `FileNoPeek` (C unpickler over `BytesIO`): the unpickler holds a buffer that is the last
//!   `read()` from the file. FRAME fills it with `n` bytes (or, if the previous buffer still
//!   holds `n`, just rewinds into it); a read of `k` with `0 < r < k` bytes left drops those `r`
//!   bytes and reads `k` fresh bytes after the buffer. Readline searches the buffer, and if no
//!   newline is there, drops the rest and reads a line from the file.
//! * `PurePython` (`pickle._Unpickler`, `_Unframer`): a read that does not fit in the current
//!   frame raises "pickle exhausted before end of frame"; a FRAME while bytes remain raises
//!   "beginning of a new frame before end of current frame"; a FRAME longer than the data is
//!   truncated silently (the short read only raises when it is used up).
//!
//! In every mode, `cur` is where the next read starts, and for the file modes `buf_end` is how
//! far the "file" has been read (so `cur..buf_end` is what the buffer/frame still holds).

use super::ReadMode;

/// Why a read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The data ended ("pickle data was truncated" / EOF).
    Truncated,
    /// PurePython: the read straddles the end of the frame.
    Straddle,
    /// PurePython: FRAME while the previous frame still holds bytes.
    EarlyFrame,
    /// A length beyond what the platform can address.
    Overflow,
}

/// Framing events worth an anomaly; drained by the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameEvent {
    Straddle,
    Early,
    Overrun,
}

pub(crate) struct Reader<'a> {
    data: &'a [u8],
    mode: ReadMode,
    cur: usize,
    /// File modes: end of the bytes taken from the file. InMemory: `data.len()`.
    buf_end: usize,
    /// InMemory only: end of the last FRAME (for reporting; reads ignore it).
    lframe_end: usize,
    pub(crate) events: Vec<(u64, FrameEvent)>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], start: usize, mode: ReadMode) -> Reader<'a> {
        let start = start.min(data.len());
        let buf_end = if mode == ReadMode::InMemory {
            data.len()
        } else {
            start
        };
        Reader {
            data,
            mode,
            cur: start,
            buf_end,
            lframe_end: 0,
            events: Vec::new(),
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.cur
    }

    /// The end of the bytes that reads from `pos()` may take as plain contiguous bytes, with no
    /// framing effect at all (no straddle, no refill, no error) as long as a read ends at or
    /// before it: the rest of the file buffer in the file modes; in memory, the end of the
    /// current frame (a read past it is a straddle worth reporting) or of the data. The
    /// machine's fast path decodes opcodes straight from the slice up to here.
    #[inline]
    pub(crate) fn plain_end(&self) -> usize {
        match self.mode {
            ReadMode::InMemory if self.cur < self.lframe_end => self.lframe_end,
            ReadMode::InMemory => self.data.len(),
            _ => self.buf_end,
        }
    }

    /// Moves past bytes the fast path took; `pos` is at most [`Reader::plain_end`].
    #[inline]
    pub(crate) fn advance_to(&mut self, pos: usize) {
        self.cur = pos.min(self.plain_end()).max(self.cur);
    }

    /// Bytes the current frame still holds (0 outside frames).
    pub(crate) fn frame_left(&self) -> usize {
        match self.mode {
            ReadMode::InMemory => self.lframe_end.saturating_sub(self.cur),
            _ => self.buf_end - self.cur,
        }
    }

    /// Where a following `pickle.load` on the same file would start (§1.3, §10.2): right after
    /// STOP in memory; after everything taken from the file otherwise (a FRAME that runs past
    /// STOP has consumed the next pickle's first bytes).
    pub(crate) fn next_start(&self) -> usize {
        match self.mode {
            ReadMode::InMemory => self.cur,
            _ => self.buf_end,
        }
    }

    /// Where a host reading raw bytes from the file object (joblib arrays, §3.3) would read.
    pub(crate) fn raw_position(&self) -> usize {
        self.next_start()
    }

    /// Moves the file position after raw bytes the host read directly; any frame is abandoned.
    pub(crate) fn skip_raw_to(&mut self, pos: usize) {
        let pos = pos.min(self.data.len());
        self.cur = pos;
        self.lframe_end = 0;
        if self.mode != ReadMode::InMemory {
            self.buf_end = pos;
        }
    }

    fn event(&mut self, at: usize, e: FrameEvent) {
        self.events.push((at as u64, e));
    }

    /// Reads `k` bytes; returns the absolute offset where they start (they are contiguous).
    #[inline]
    pub(crate) fn read(&mut self, k: usize) -> Result<usize, ReadError> {
        let avail = self.buf_end - self.cur;
        if k <= avail {
            let s = self.cur;
            self.cur += k;
            if s < self.lframe_end && self.cur > self.lframe_end {
                self.event(s, FrameEvent::Straddle);
            }
            return Ok(s);
        }
        self.read_slow(k, avail)
    }

    #[cold]
    fn read_slow(&mut self, k: usize, avail: usize) -> Result<usize, ReadError> {
        match self.mode {
            ReadMode::InMemory => {
                self.cur = self.data.len();
                Err(ReadError::Truncated)
            }
            ReadMode::FileNoPeek => {
                if avail > 0 {
                    // §1.2: the r bytes left in the buffer are dropped.
                    self.event(self.cur, FrameEvent::Straddle);
                }
                self.fresh(k)
            }
            ReadMode::PurePython => {
                if avail > 0 {
                    self.event(self.cur, FrameEvent::Straddle);
                    return Err(ReadError::Straddle);
                }
                self.fresh(k)
            }
        }
    }

    /// A read of `k` bytes from the file, after what was taken so far.
    fn fresh(&mut self, k: usize) -> Result<usize, ReadError> {
        let s = self.buf_end;
        let left = self.data.len() - s;
        if k > left {
            self.cur = self.data.len();
            self.buf_end = self.data.len();
            return Err(ReadError::Truncated);
        }
        self.buf_end = s + k;
        self.cur = self.buf_end;
        Ok(s)
    }

    /// Reads one byte.
    #[inline]
    pub(crate) fn byte(&mut self) -> Result<u8, ReadError> {
        let s = self.read(1)?;
        self.data.get(s).copied().ok_or(ReadError::Truncated)
    }

    /// Reads `N` bytes as an array.
    #[inline]
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let s = self.read(N)?;
        self.data
            .get(s..s + N)
            .and_then(|b| b.try_into().ok())
            .ok_or(ReadError::Truncated)
    }

    /// Reads a newline-terminated line; returns (start, length without the newline).
    pub(crate) fn line(&mut self) -> Result<(usize, usize), ReadError> {
        let limit = match self.mode {
            ReadMode::InMemory => self.data.len(),
            _ => self.buf_end,
        };
        if let Some(i) = find_nl(self.data, self.cur, limit) {
            let s = self.cur;
            self.cur = i + 1;
            if s < self.lframe_end && self.cur > self.lframe_end {
                self.event(s, FrameEvent::Straddle);
            }
            return Ok((s, i - s));
        }
        match self.mode {
            ReadMode::InMemory => {
                self.cur = self.data.len();
                Err(ReadError::Truncated)
            }
            ReadMode::FileNoPeek | ReadMode::PurePython => {
                if self.cur < self.buf_end {
                    self.event(self.cur, FrameEvent::Straddle);
                    if self.mode == ReadMode::PurePython {
                        return Err(ReadError::Straddle);
                    }
                }
                // A fresh readline() from the file, after what the buffer held.
                let s = self.buf_end;
                match find_nl(self.data, s, self.data.len()) {
                    Some(i) => {
                        self.buf_end = i + 1;
                        self.cur = i + 1;
                        Ok((s, i - s))
                    }
                    None => {
                        self.cur = self.data.len();
                        self.buf_end = self.data.len();
                        Err(ReadError::Truncated)
                    }
                }
            }
        }
    }

    /// Handles FRAME's effect after its 8-byte length `n` was read (§1.2).
    pub(crate) fn frame(&mut self, n: u64) -> Result<(), ReadError> {
        let at = self.cur;
        // C: calc_binsize refuses lengths above PY_SSIZE_T_MAX; pickle.py refuses > sys.maxsize.
        let n = usize::try_from(n)
            .ok()
            .filter(|n| *n <= isize::MAX as usize)
            .ok_or(ReadError::Overflow)?;
        match self.mode {
            ReadMode::InMemory => {
                if at < self.lframe_end {
                    self.event(at, FrameEvent::Early);
                }
                if n > self.data.len() - at {
                    self.event(at, FrameEvent::Overrun);
                    return Err(ReadError::Truncated);
                }
                self.lframe_end = at + n;
                Ok(())
            }
            ReadMode::FileNoPeek => {
                let avail = self.buf_end - at;
                if avail > 0 {
                    self.event(at, FrameEvent::Early);
                }
                if n > avail && n > self.data.len() - self.buf_end {
                    self.event(at, FrameEvent::Overrun);
                }
                // load_frame: _Unpickler_Read(n) then rewind by n.
                let s = self.read(n)?;
                self.cur = s;
                Ok(())
            }
            ReadMode::PurePython => {
                if at < self.buf_end {
                    self.event(at, FrameEvent::Early);
                    return Err(ReadError::EarlyFrame);
                }
                let got = n.min(self.data.len() - self.buf_end);
                if got < n {
                    self.event(at, FrameEvent::Overrun);
                }
                self.buf_end += got;
                Ok(())
            }
        }
    }
}

#[inline]
fn find_nl(data: &[u8], from: usize, to: usize) -> Option<usize> {
    let to = to.min(data.len());
    if from >= to {
        return None;
    }
    data.get(from..to)?
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_no_peek_drops_rest_of_frame() {
        // frame of 3 bytes at 0..3, then "XYZW" after it.
        let data = b"abcXYZW";
        let mut r = Reader::new(data, 0, ReadMode::FileNoPeek);
        r.frame(3).unwrap();
        assert_eq!(r.read(2).unwrap(), 0);
        // 1 byte left in the frame; a 2-byte read drops it and reads after the frame.
        assert_eq!(r.read(2).unwrap(), 3);
        assert_eq!(r.events, vec![(2, FrameEvent::Straddle)]);
        assert_eq!(r.next_start(), 5);
    }

    #[test]
    fn pure_python_raises_on_straddle_and_early_frame() {
        let data = b"abcXYZW";
        let mut r = Reader::new(data, 0, ReadMode::PurePython);
        r.frame(3).unwrap();
        r.read(2).unwrap();
        assert_eq!(r.read(2), Err(ReadError::Straddle));
        let mut r = Reader::new(data, 0, ReadMode::PurePython);
        r.frame(3).unwrap();
        assert_eq!(r.frame(1), Err(ReadError::EarlyFrame));
    }

    #[test]
    fn in_memory_reads_through_and_checks_length() {
        let data = b"abcXYZW";
        let mut r = Reader::new(data, 0, ReadMode::InMemory);
        assert_eq!(r.frame(8), Err(ReadError::Truncated));
        let mut r = Reader::new(data, 0, ReadMode::InMemory);
        r.frame(3).unwrap();
        r.read(2).unwrap();
        assert_eq!(r.read(2).unwrap(), 2);
        assert_eq!(r.events, vec![(2, FrameEvent::Straddle)]);
    }

    #[test]
    fn readline_in_file_mode_drops_partial_line() {
        let data = b"ab\ncdXY\n";
        let mut r = Reader::new(data, 0, ReadMode::FileNoPeek);
        r.frame(5).unwrap();
        assert_eq!(r.line().unwrap(), (0, 2));
        // "cd" has no newline inside the frame: dropped, next line read from the file.
        assert_eq!(r.line().unwrap(), (5, 2));
    }
}
