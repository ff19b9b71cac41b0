//! JSON text written straight into a `String`, byte for byte as `serde_json` writes it
//! (compact, the same escapes), but with a word-at-a-time check for the common string that
//! needs no escaping: the simulator writes gigabytes of short, plain strings, and
//! serde_json's byte-by-byte escape loop was a fifth of its time.

use serde_json::Value;

/// Whether `s` holds a byte JSON escapes: a control character, `"` or `\`.
fn needs_escape(s: &[u8]) -> bool {
    if s.len() < 8 {
        return s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    }
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let mut at = 0;
    while at + 8 <= s.len() {
        if word_needs_escape(word(at)) {
            return true;
        }
        at += 8;
    }
    // The last bytes, as the (overlapping) last word.
    at < s.len() && word_needs_escape(word(s.len() - 8))
}

fn word_needs_escape(x: u64) -> bool {
    loupe_audit::scan::string_specials(x) != 0
}

/// `s` as a JSON string, quoted.
pub fn push_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    push_unquoted(out, s);
    out.push('"');
}

/// One of the simulator's own literals (a resource, a version), which need no escaping.
pub fn push_literal(out: &mut String, s: &'static str) {
    debug_assert!(!needs_escape(s.as_bytes()), "literal {s:?} needs escaping");
    out.push_str(s);
}

/// `s` escaped for the inside of a JSON string.
pub fn push_unquoted(out: &mut String, s: &str) {
    if needs_escape(s.as_bytes()) {
        push_escaped(out, s);
    } else {
        out.push_str(s);
    }
}

/// The escapes serde_json writes: the short forms, else `\u00XX` in lower-case hex.
fn push_escaped(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        plain = i + 1;
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(short);
        }
    }
    out.push_str(&s[plain..]);
}

pub fn push_int(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// A value's compact JSON text, as `serde_json::to_writer` writes it.
pub fn push_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                push_int(out, i);
            } else if let Some(u) = n.as_u64() {
                push_int(out, u);
            } else {
                // Floats: serde_json's `Display` of a number is its serialized form.
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => push_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_str(out, key);
                out.push(':');
                push_value(out, item);
            }
            out.push('}');
        }
    }
}

/// A JSON object written field by field, straight into the text. Keys are the
/// simulator's literals (checked in debug builds); values are escaped.
pub struct Obj<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Obj<'a> {
    pub fn new(out: &'a mut String) -> Obj<'a> {
        out.push('{');
        Obj { out, empty: true }
    }

    /// `,"key":` (no comma before the first field): where the value goes.
    fn key(&mut self, key: &str) -> &mut String {
        debug_assert!(!needs_escape(key.as_bytes()), "key {key:?} needs escaping");
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self.out
    }

    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        push_str(self.key(key), value);
        self
    }

    /// A string value written by `text` in place; it must write nothing that needs
    /// escaping (digits, stamps, the simulator's literals).
    pub fn text(&mut self, key: &str, text: impl FnOnce(&mut String)) -> &mut Self {
        let out = self.key(key);
        out.push('"');
        let start = out.len();
        text(out);
        debug_assert!(
            !needs_escape(&out.as_bytes()[start..]),
            "text needs escaping"
        );
        out.push('"');
        self
    }

    pub fn opt_str(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.str(key, value);
        }
        self
    }

    pub fn int(&mut self, key: &str, value: impl itoa::Integer) -> &mut Self {
        push_int(self.key(key), value);
        self
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key).push_str(if value { "true" } else { "false" });
        self
    }

    pub fn null(&mut self, key: &str) -> &mut Self {
        self.key(key).push_str("null");
        self
    }

    /// A value that is JSON text already.
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key).push_str(json);
        self
    }

    pub fn obj(&mut self, key: &str, fields: impl FnOnce(&mut Obj<'_>)) -> &mut Self {
        let mut inner = Obj::new(self.key(key));
        fields(&mut inner);
        inner.end();
        self
    }

    pub fn arr(&mut self, key: &str, items: impl FnOnce(&mut Arr<'_>)) -> &mut Self {
        let mut inner = Arr::new(self.key(key));
        items(&mut inner);
        inner.end();
        self
    }

    /// A field whose key is data (a label's name): escaped like a value.
    pub fn entry(&mut self, key: &str, value: &str) -> &mut Self {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        push_str(self.out, key);
        self.out.push(':');
        push_str(self.out, value);
        self
    }

    pub fn end(self) {
        self.out.push('}');
    }
}

/// A JSON array written item by item.
pub struct Arr<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Arr<'a> {
    pub fn new(out: &'a mut String) -> Arr<'a> {
        out.push('[');
        Arr { out, empty: true }
    }

    fn next(&mut self) -> &mut String {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out
    }

    pub fn str(&mut self, value: &str) -> &mut Self {
        push_str(self.next(), value);
        self
    }

    /// Items that are JSON text already (`a,b`).
    pub fn raw(&mut self, items: &str) -> &mut Self {
        self.next().push_str(items);
        self
    }

    pub fn obj(&mut self, fields: impl FnOnce(&mut Obj<'_>)) -> &mut Self {
        let mut inner = Obj::new(self.next());
        fields(&mut inner);
        inner.end();
        self
    }

    pub fn end(self) {
        self.out.push(']');
    }
}

/// Writes an object into a new string: `object(|o| { o.str("a", "b"); })`.
///
/// The text is written into a buffer kept by the thread, which grows once to the largest
/// object, and then copied into a string of its exact size: a string grown from a guess
/// was copied at every doubling. An object written while another is (nested calls) gets
/// a buffer of its own, from `capacity`.
pub fn object(capacity: usize, fields: impl FnOnce(&mut Obj<'_>)) -> String {
    text(capacity, |out| {
        let mut o = Obj::new(out);
        fields(&mut o);
        o.end();
    })
}

/// JSON text written by `write` into a new string, the way [`object`] writes.
pub fn text(capacity: usize, write: impl FnOnce(&mut String)) -> String {
    thread_local! {
        static SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            write(&mut scratch);
            scratch.as_str().to_owned()
        }
        Err(_) => {
            let mut out = String::with_capacity(capacity);
            write(&mut out);
            out
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(s: &str) -> String {
        let mut out = String::new();
        push_str(&mut out, s);
        out
    }

    #[test]
    fn strings_come_out_as_serde_json_writes_them() {
        let mut samples: Vec<String> = [
            "",
            "plain",
            "exactly8",
            "a \"quoted\" word",
            "back\\slash at 9",
            "tab\there, newline\n, cr\r, bell\u{7}, nul\u{0}, esc\u{1b}, bs\u{8}, ff\u{c}",
            "non-ASCII: ü, 日本, 🚀 and DEL \u{7f}",
            "0123456789abcdef\"",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every byte below 0x80 at every position of a 17-byte string.
        for b in 0u8..0x80 {
            for at in 0..17 {
                let mut s = vec![b'x'; 17];
                s[at] = b;
                samples.push(String::from_utf8(s).unwrap());
            }
        }
        for s in &samples {
            assert_eq!(text(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn values_come_out_as_serde_json_writes_them() {
        let v = json!({"b": [1, -2, 3.5, u64::MAX, null, true, false, "x\"y"],
                       "a": {"nested": {}, "list": []}, "c": "ü\n"});
        let mut out = String::new();
        push_value(&mut out, &v);
        assert_eq!(out, serde_json::to_string(&v).unwrap());
    }

    #[test]
    fn objects_written_by_field_match_their_values() {
        let text = object(16, |o| {
            o.str("a", "x\"y")
                .opt_str("absent", None)
                .int("n", -3)
                .bool("t", true)
                .null("z")
                .raw("raw", "[1]")
                .obj("inner", |i| {
                    i.entry("label/with\"quote", "v");
                })
                .arr("list", |a| {
                    a.str("s").obj(|i| {
                        i.bool("f", false);
                    });
                });
        });
        let want = json!({"a": "x\"y", "n": -3, "t": true, "z": null, "raw": [1],
            "inner": {"label/with\"quote": "v"}, "list": ["s", {"f": false}]});
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), want);
        assert_eq!(object(0, |_| {}), "{}");
        // An object written inside another's closure has a buffer of its own.
        let outer = object(0, |o| {
            let inner = object(0, |i| {
                i.int("n", 1);
            });
            o.raw("inner", &inner);
        });
        assert_eq!(outer, r#"{"inner":{"n":1}}"#);
    }
}
