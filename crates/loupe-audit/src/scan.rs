//! A JSON scanner for the audit envelope: it reads the few fields Loupe needs and finds
//! the extent of everything else without building it.
//!
//! Most audit events are noise whose envelope is all that is read, and the bodies of the
//! others are decoded later, typed, only when their resource is analysed. serde's derive
//! spent most of its time matching keys and skipping through its visitor machinery; this
//! scanner validates the same grammar (RFC 8259: strings with their escapes, numbers,
//! literals, nesting of any depth) byte by byte, eight bytes at a time inside strings.
//! Strings with escapes are rare in audit logs and are unescaped by serde_json.

use std::borrow::Cow;

use crate::event::DecodeError;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` (little endian) that ends a run of plain string
/// text: `"`, `\` and control bytes. Only the lowest set bit is exact: a borrow may also
/// mark bytes above it.
pub fn string_specials(word: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    // `word - 0x20…` borrows into a byte's high bit only for bytes below 0x20.
    (word.wrapping_sub(0x20 * ONES) & !word & HIGHS)
        | zero(word ^ (u64::from(b'"') * ONES))
        | zero(word ^ (u64::from(b'\\') * ONES))
}

/// The index of the first `"`, `\\` or control byte at or after `from`, or the length.
#[inline(always)]
fn plain_run_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    #[cfg(target_arch = "x86_64")]
    while i + 16 <= bytes.len() {
        // SAFETY: SSE2 is part of x86_64; the 16 bytes at `i` are in bounds (checked above).
        let specials = unsafe { sse2::specials(bytes.as_ptr().add(i)) };
        if specials != 0 {
            return i + specials.trailing_zeros() as usize;
        }
        i += 16;
    }
    while let Some(chunk) = bytes.get(i..).and_then(|b| b.first_chunk::<8>()) {
        let specials = string_specials(u64::from_le_bytes(*chunk));
        if specials != 0 {
            return i + specials.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    /// A bit per byte of the 16 at `at`: set for `"`, `\\` and control bytes.
    ///
    /// # Safety
    /// The 16 bytes at `at` must be readable.
    #[inline]
    pub unsafe fn specials(at: *const u8) -> u32 {
        let v = _mm_loadu_si128(at.cast());
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // Unsigned `v <= 0x1f`: the minimum of the two is `v` itself.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

/// A scan failed; what and where are in the [`Scanner`] (a zero-sized error keeps every
/// result small enough to come back in registers).
#[derive(Debug)]
pub(crate) struct Fail;

pub(crate) type Scan<T> = Result<T, Fail>;

/// The known fields of one object seen so far: a field given twice is refused, as serde's
/// derive did (kube-apiserver never repeats one, and "last wins" would let a broken first
/// copy pass unread).
#[derive(Default)]
pub(crate) struct Seen(u32);

impl Seen {
    /// Marks field `index` (below 32); fails if it was already there.
    pub fn first(&mut self, scan: &mut Scanner<'_>, index: usize) -> Scan<()> {
        let bit = 1 << index;
        if self.0 & bit != 0 {
            return scan.fail("duplicate field");
        }
        self.0 |= bit;
        Ok(())
    }

    pub fn has(&self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }
}

/// A position in one JSON text.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    at: usize,
    what: &'static str,
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Scanner<'a> {
        Scanner {
            text,
            at: 0,
            what: "",
        }
    }

    /// Why and where the scan failed.
    pub fn error(&self) -> DecodeError {
        DecodeError::Syntax {
            what: self.what,
            at: self.at,
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The text between two positions the scanner stopped at. Every such position is at
    /// an ASCII byte (a quote, a bracket, a digit...) or the end, so on a character
    /// boundary: the checks of `&text[a..b]` were 3 % of decoding.
    fn slice(&self, start: usize, end: usize) -> &'a str {
        debug_assert!(start <= end && end <= self.text.len());
        debug_assert!(self.text.is_char_boundary(start) && self.text.is_char_boundary(end));
        // SAFETY: `start <= end <= len`, both on character boundaries (see above).
        unsafe { self.text.get_unchecked(start..end) }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    #[cold]
    pub fn fail<T>(&mut self, what: &'static str) -> Scan<T> {
        self.what = what;
        Err(Fail)
    }

    /// Skips whitespace and returns the byte there: one bounds check for both (bounds
    /// checks of separate peeks were a sixth of decoding).
    #[inline(always)]
    fn ws_peek(&mut self) -> Option<u8> {
        let bytes = self.bytes();
        // Compact JSON has no whitespace: every byte above the space is the answer.
        if let Some(&b) = bytes.get(self.at) {
            if b > b' ' {
                return Some(b);
            }
        }
        while let Some(&b) = bytes.get(self.at) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    fn ws(&mut self) {
        self.ws_peek();
    }

    fn eat(&mut self, byte: u8, what: &'static str) -> Scan<()> {
        if self.ws_peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            self.fail(what)
        }
    }

    /// Only whitespace may follow the value.
    pub fn end(&mut self) -> Scan<()> {
        self.ws();
        if self.at == self.text.len() {
            Ok(())
        } else {
            self.fail("trailing characters")
        }
    }

    /// Whether the next value is `null` (consumed if so).
    pub fn null(&mut self) -> Scan<bool> {
        if self.ws_peek() == Some(b'n') {
            self.literal(b"null")?;
            return Ok(true);
        }
        Ok(false)
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if self.bytes()[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            self.fail("invalid literal")
        }
    }

    /// Walks an object, handing each key to `field`, which must consume the value.
    #[inline]
    pub fn object(&mut self, mut field: impl FnMut(&mut Self, &str) -> Scan<()>) -> Scan<()> {
        self.map(|scan, key| field(scan, &key))
    }

    /// Walks an object whose keys are kept (a label map): `entry` gets each key as text of
    /// the input and must consume the value.
    pub fn map(&mut self, mut entry: impl FnMut(&mut Self, Cow<'a, str>) -> Scan<()>) -> Scan<()> {
        self.eat(b'{', "expected an object")?;
        if self.ws_peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            if self.ws_peek() != Some(b'"') {
                return self.fail("expected a key");
            }
            let key = self.string_here()?;
            self.eat(b':', "expected ':'")?;
            entry(self, key)?;
            match self.ws_peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return self.fail("expected ',' or '}'"),
            }
        }
    }

    /// Walks an array, reading each element with `item`.
    pub fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Scan<T>) -> Scan<Vec<T>> {
        self.eat(b'[', "expected an array")?;
        let mut out = Vec::new();
        if self.ws_peek() == Some(b']') {
            self.at += 1;
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            match self.ws_peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(out);
                }
                _ => return self.fail("expected ',' or ']'"),
            }
        }
    }

    /// `true` or `false`, or `None` for `null`.
    pub fn opt_bool(&mut self) -> Scan<Option<bool>> {
        match self.ws_peek() {
            Some(b't') => self.literal(b"true").map(|()| Some(true)),
            Some(b'f') => self.literal(b"false").map(|()| Some(false)),
            Some(b'n') => self.literal(b"null").map(|()| None),
            _ => self.fail("expected a boolean"),
        }
    }

    /// An integer written as a JSON number that fits `T`. As serde_json, `-0`, fractions
    /// and exponents are floats, not integers.
    pub fn integer<T: std::str::FromStr>(&mut self) -> Scan<T> {
        if !matches!(self.ws_peek(), Some(b'-' | b'0'..=b'9')) {
            return self.fail("expected an integer");
        }
        let start = self.at;
        self.skip_number()?;
        let text = self.slice(start, self.at);
        match text.parse() {
            Ok(n) if text != "-0" => Ok(n),
            _ => {
                self.at = start;
                self.fail("expected an integer in range")
            }
        }
    }

    /// The next byte that is not whitespace, if any (the kind of value that starts there).
    pub fn next_byte(&mut self) -> Option<u8> {
        self.ws_peek()
    }

    /// A string value; borrowed unless it holds escapes.
    #[inline]
    pub fn string(&mut self) -> Scan<Cow<'a, str>> {
        if self.ws_peek() != Some(b'"') {
            return self.fail("expected a string");
        }
        self.string_here()
    }

    /// A string, or `None` for `null` (one look at the next byte decides).
    pub fn opt_string(&mut self) -> Scan<Option<Cow<'a, str>>> {
        match self.ws_peek() {
            Some(b'"') => self.string_here().map(Some),
            Some(b'n') => self.literal(b"null").map(|()| None),
            _ => self.fail("expected a string"),
        }
    }

    /// The string whose opening quote is at the current position.
    #[inline(always)]
    fn string_here(&mut self) -> Scan<Cow<'a, str>> {
        let start = self.at;
        if self.skip_string()? {
            return self.unescape(start);
        }
        Ok(Cow::Borrowed(self.slice(start + 1, self.at - 1)))
    }

    /// The string literal from `start` to here, which holds escapes (rare in audit logs).
    #[cold]
    fn unescape(&mut self, start: usize) -> Scan<Cow<'a, str>> {
        match serde_json::from_str(self.slice(start, self.at)) {
            Ok(text) => Ok(Cow::Owned(text)),
            Err(_) => {
                self.at = start;
                self.fail("invalid escape in a string (a lone surrogate?)")
            }
        }
    }

    /// An unsigned integer that fits `u16`; `null` is 0.
    pub fn u16(&mut self) -> Scan<u16> {
        if self.null()? {
            return Ok(0);
        }
        let start = self.at;
        if !matches!(self.peek(), Some(b'-' | b'0'..=b'9')) {
            return self.fail("expected a number");
        }
        self.skip_number()?;
        // serde_json reads `-0` as a float: not a status code either.
        match self.slice(start, self.at).parse::<u16>().ok() {
            Some(n) => Ok(n),
            None => {
                self.at = start;
                self.fail("expected an integer from 0 to 65535")
            }
        }
    }

    /// Skips any value, returning its text.
    pub fn raw(&mut self) -> Scan<&'a str> {
        self.ws();
        let start = self.at;
        self.skip_value()?;
        Ok(self.slice(start, self.at))
    }

    /// At an opening quote: moves past the closing one; true if the string holds escapes.
    #[inline(always)]
    fn skip_string(&mut self) -> Scan<bool> {
        let bytes = self.bytes();
        let end = plain_run_end(bytes, self.at + 1);
        if bytes.get(end) == Some(&b'"') {
            self.at = end + 1;
            return Ok(false);
        }
        self.skip_string_rest(end)
    }

    /// The rest of a string from its first escape (or error) at `i`.
    #[inline(never)]
    fn skip_string_rest(&mut self, mut i: usize) -> Scan<bool> {
        let bytes = self.bytes();
        loop {
            match bytes.get(i) {
                Some(b'"') => {
                    self.at = i + 1;
                    return Ok(true);
                }
                Some(b'\\') => i = plain_run_end(bytes, self.skip_escape(i)?),
                Some(_) => {
                    self.at = i;
                    return self.fail("control character in a string");
                }
                None => {
                    self.at = i;
                    return self.fail("unterminated string");
                }
            }
        }
    }

    /// At a backslash: the index after its escape. `\u` takes four hex digits; whether
    /// they make a valid character is left to whoever decodes the string.
    fn skip_escape(&mut self, at: usize) -> Scan<usize> {
        let bytes = self.bytes();
        match bytes.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(at + 2),
            Some(b'u')
                if bytes
                    .get(at + 2..at + 6)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
            {
                Ok(at + 6)
            }
            _ => {
                self.at = at;
                self.fail("invalid escape")
            }
        }
    }

    fn digits(&mut self) -> Scan<()> {
        let bytes = self.bytes();
        let start = self.at;
        while bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        if self.at == start {
            return self.fail("invalid number");
        }
        Ok(())
    }

    fn skip_number(&mut self) -> Scan<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits()?,
            _ => return self.fail("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.digits()?;
        }
        Ok(())
    }

    /// Skips one value of any depth; containers are tracked in a bit stack (1 = array).
    fn skip_value(&mut self) -> Scan<()> {
        let mut stack = BitStack::default();
        loop {
            // A value is expected.
            match self.ws_peek() {
                Some(b'{') => {
                    self.at += 1;
                    if self.ws_peek() == Some(b'}') {
                        self.at += 1;
                    } else {
                        stack.push(false);
                        self.key()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    self.at += 1;
                    if self.ws_peek() == Some(b']') {
                        self.at += 1;
                    } else {
                        stack.push(true);
                        continue;
                    }
                }
                Some(b'"') => {
                    self.skip_string()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.skip_number()?,
                _ => return self.fail("expected a value"),
            }
            // After a value: close what ends here, then the next member, or done.
            loop {
                let Some(in_array) = stack.top() else {
                    return Ok(());
                };
                match (self.ws_peek(), in_array) {
                    (Some(b','), _) => {
                        self.at += 1;
                        if !in_array {
                            self.key()?;
                        }
                        break;
                    }
                    (Some(b'}'), false) | (Some(b']'), true) => {
                        self.at += 1;
                        stack.pop();
                    }
                    (_, false) => return self.fail("expected ',' or '}'"),
                    (_, true) => return self.fail("expected ',' or ']'"),
                }
            }
        }
    }

    /// An object member's key and its colon.
    fn key(&mut self) -> Scan<()> {
        if self.ws_peek() != Some(b'"') {
            return self.fail("expected a key");
        }
        self.skip_string()?;
        self.eat(b':', "expected ':'")
    }
}

/// Open containers, innermost last: 64 levels in a word, deeper ones spilled (serde_json
/// skips values of any depth, so this does too).
#[derive(Default)]
struct BitStack {
    word: u64,
    len: u32,
    spilled: Vec<u64>,
}

impl BitStack {
    fn push(&mut self, bit: bool) {
        if self.len == 64 {
            self.spilled.push(self.word);
            self.word = 0;
            self.len = 0;
        }
        self.word = (self.word << 1) | u64::from(bit);
        self.len += 1;
    }

    fn pop(&mut self) {
        self.word >>= 1;
        self.len -= 1;
        if self.len == 0 {
            if let Some(word) = self.spilled.pop() {
                self.word = word;
                self.len = 64;
            }
        }
    }

    fn top(&self) -> Option<bool> {
        (self.len > 0).then_some(self.word & 1 == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(text: &str) -> Scan<&str> {
        let mut s = Scanner::new(text);
        let raw = s.raw()?;
        s.end()?;
        Ok(raw)
    }

    #[test]
    fn finds_the_first_special_byte_of_a_word() {
        let special = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
        for at in 0..8 {
            for byte in 0..=255u8 {
                // Also with a special byte after it, which must not hide the first.
                for later in [b'a', b'"', 0u8, 0xff] {
                    let mut word = *b"abcdefgh";
                    word[at] = byte;
                    if at < 7 {
                        word[7] = later;
                    }
                    let expected = word.iter().position(|&b| special(b));
                    let mask = string_specials(u64::from_le_bytes(word));
                    let found = (mask != 0).then(|| mask.trailing_zeros() as usize / 8);
                    assert_eq!(found, expected, "{word:?}");
                }
            }
        }
    }

    #[test]
    fn skips_what_serde_json_accepts() {
        for text in [
            "0",
            "-0.5e+10",
            "\"a\\\"b\\u00e9\"",
            "[]",
            "{}",
            "[1,[2,[3,{}]],{\"a\":[]}]",
            "{\"a\" : { \"b\" : [ true , false , null ] } }",
            " \"long string with no escapes at all, past several words\" ",
            "\"caf\u{e9} \u{1F600}\"",
        ] {
            assert_eq!(skip(text).ok(), Some(text.trim()), "{text}");
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok());
        }
        let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
        assert!(skip(&deep).is_ok());
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        for text in [
            "",
            "[",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{1:2}",
            "01",
            "1.",
            "1e",
            "-",
            "tru",
            "nul",
            "\"abc",
            "\"a\\x\"",
            "\"\\u12g4\"",
            "\"a\u{1}b\"",
            "[1 2]",
            "{\"a\":1]",
            "[1}",
            "1 2",
        ] {
            assert!(skip(text).is_err(), "{text:?} accepted");
            assert!(serde_json::from_str::<serde::de::IgnoredAny>(text).is_err());
        }
        let unbalanced = format!("{}{}", "[".repeat(100), "]".repeat(99));
        assert!(skip(&unbalanced).is_err());
    }

    #[test]
    fn unescapes_only_strings_with_escapes() {
        let mut s = Scanner::new(r#""plain""#);
        assert!(matches!(s.string().unwrap(), Cow::Borrowed("plain")));
        let mut s = Scanner::new(r#""a\"b\u00e9""#);
        assert_eq!(s.string().unwrap(), "a\"bé");
        let mut s = Scanner::new(r#""\ud800""#);
        assert!(s.string().is_err(), "a lone surrogate is not text");
    }

    #[test]
    fn reads_status_codes() {
        for (text, code) in [
            ("200", Some(200)),
            ("null", Some(0)),
            ("65535", Some(65535)),
        ] {
            assert_eq!(Scanner::new(text).u16().ok(), code);
        }
        for text in ["65536", "-1", "-0", "200.0", "\"200\""] {
            assert!(Scanner::new(text).u16().is_err(), "{text}");
        }
    }
}
