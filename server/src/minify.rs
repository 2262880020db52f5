//! A conservative JavaScript minifier for the portal's own scripts: it drops comments and the
//! whitespace that separates nothing, and keeps every line break, so that a served script has
//! the lines of its source (line numbers in the browser's errors point into `static/`).
//!
//! It does not rename, reorder or rewrite anything: what it keeps is the source's tokens in
//! their order, as `playwright/tests/minified.spec.js` checks against a real JS tokenizer for
//! every script the portal serves. It reads strings, template literals (with nested `${}`),
//! regular expression literals and comments, which is all it needs to tell a `//` or a space
//! that matters from one that does not.

/// Keywords after which a `/` starts a regular expression rather than a division.
const KEYWORDS_BEFORE_EXPRESSION: &[&str] = &[
    "return",
    "typeof",
    "instanceof",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "case",
    "do",
    "else",
    "yield",
    "await",
];

/// What came last, for deciding whether a `/` divides or starts a regular expression.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    /// Nothing yet, or punctuation after which an expression starts (`(`, `=`, `,`, …).
    ExpressionStart,
    /// A value: a name, a number, a literal, `)` or `]`, or `++`/`--` after one.
    Value,
}

/// Returns `source` without comments and needless spaces; its line breaks are all kept.
/// Input it cannot read (an unterminated string or comment) is copied as it is from there on,
/// so the browser reports the error the source has.
pub fn minify_js(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    // Open template literals: for each, the depth of `{` inside its current `${`.
    let mut templates: Vec<usize> = Vec::new();
    let mut last = Last::ExpressionStart;
    let mut pending_space = false;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        // Line terminators all stay, as they are: a statement may end at one (ASI).
        let line_break = line_break_len(bytes, i);
        if line_break > 0 {
            out.extend_from_slice(&bytes[i..i + line_break]);
            pending_space = false;
            i += line_break;
            continue;
        }
        match byte {
            b' ' | b'\t' | 0x0b | 0x0c => {
                pending_space = true;
                i += 1;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                // A line comment: its text goes, its line break stays.
                while i < bytes.len() && line_break_len(bytes, i) == 0 {
                    i += 1;
                }
                pending_space = true;
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let Some(end) = find(bytes, i + 2, b"*/") else {
                    out.extend_from_slice(&bytes[i..]);
                    break;
                };
                // Its text goes; its line breaks stay (one of them ends a statement as a line
                // break would; none, and it separates tokens as a space would).
                let mut broke = false;
                let mut at = i + 2;
                while at < end {
                    match line_break_len(bytes, at) {
                        0 => at += 1,
                        len => {
                            out.extend_from_slice(&bytes[at..at + len]);
                            broke = true;
                            at += len;
                        }
                    }
                }
                pending_space = !broke;
                i = end + 2;
                continue;
            }
            _ => {}
        }
        if pending_space && needs_space(&out, byte) {
            out.push(b' ');
        }
        pending_space = false;
        match byte {
            b'\'' | b'"' => {
                let end = skip_string(bytes, i, byte);
                out.extend_from_slice(&bytes[i..end]);
                i = end;
                last = Last::Value;
            }
            b'`' | b'}' if byte == b'`' || templates.last() == Some(&0) => {
                if byte == b'}' {
                    // The end of a `${…}`: back to the template's text.
                    templates.pop();
                }
                let end = skip_template_text(bytes, i + 1);
                out.extend_from_slice(&bytes[i..end]);
                i = end;
                if bytes[..end].ends_with(b"${") {
                    templates.push(0);
                    last = Last::ExpressionStart;
                } else {
                    last = Last::Value;
                }
            }
            b'/' if last == Last::ExpressionStart => {
                let end = skip_regex(bytes, i);
                out.extend_from_slice(&bytes[i..end]);
                i = end;
                last = Last::Value;
            }
            _ if is_word_byte(byte) => {
                let end = bytes[i..]
                    .iter()
                    .position(|&b| !is_word_byte(b))
                    .map_or(bytes.len(), |n| i + n);
                let word = &source[i..end];
                out.extend_from_slice(word.as_bytes());
                i = end;
                last = if KEYWORDS_BEFORE_EXPRESSION.contains(&word) {
                    Last::ExpressionStart
                } else {
                    Last::Value
                };
            }
            _ => {
                if byte == b'{' {
                    if let Some(depth) = templates.last_mut() {
                        *depth += 1;
                    }
                } else if byte == b'}' {
                    if let Some(depth) = templates.last_mut() {
                        *depth -= 1;
                    }
                }
                let doubled = matches!(byte, b'+' | b'-') && bytes.get(i + 1) == Some(&byte);
                if doubled {
                    // `a++ / b` divides; `++` keeps whatever came before it.
                    out.extend_from_slice(&bytes[i..i + 2]);
                    i += 2;
                    continue;
                }
                out.push(byte);
                i += 1;
                last = match byte {
                    b')' | b']' => Last::Value,
                    // A `.` is always followed by a name; `}` ends a block far more often than
                    // an object literal that is then divided.
                    _ => Last::ExpressionStart,
                };
            }
        }
    }
    // Only whole ASCII bytes were dropped or added, so the rest is the source's UTF-8.
    String::from_utf8(out).unwrap_or_else(|_| source.to_owned())
}

/// Whether a space between what was written (`out`) and `next` must stay: never at the start
/// of a line; between two names or numbers (`let x`, `1 .x`), and where the two would read as
/// one token (`+ +`, `- -`, `< !`, `- >`) or a `/` would meet what follows it (`a / /re/` is
/// not a comment, `/re/ in x` has no flags `in`).
fn needs_space(out: &[u8], next: u8) -> bool {
    let Some(&before) = out.last() else {
        return false;
    };
    // At the start of a line nothing needs separating.
    if line_break_len(out, out.len() - 1) > 0
        || line_break_len(out, out.len().saturating_sub(3)) == 3
    {
        return false;
    }
    (is_word_byte(before) && (is_word_byte(next) || next == b'.'))
        || before == b'/'
        || (before == next && matches!(before, b'+' | b'-'))
        || (before == b'<' && next == b'!')
        || (before == b'-' && next == b'>')
}

/// The length of the line terminator at `i`: `\n`, `\r`, U+2028 or U+2029 (in UTF-8), or 0.
fn line_break_len(bytes: &[u8], i: usize) -> usize {
    match bytes.get(i..) {
        Some([b'\n' | b'\r', ..]) => 1,
        Some([0xe2, 0x80, 0xa8 | 0xa9, ..]) => 3,
        _ => 0,
    }
}

/// Letters, digits, `_`, `$`, `\` (an escaped name) and any byte of a non-ASCII character.
fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'$' | b'\\') || byte >= 0x80
}

/// Where `needle` first occurs at or after `from`, if it does.
fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|n| from + n)
}

/// The index just past the string literal opening at `start` with `quote`.
fn skip_string(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'\\' => i += 2,
            b'\n' | b'\r' => return i, // unterminated: leave the error to the browser
            _ if byte == quote => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// From inside a template literal at `start`, the index just past its closing backtick or
/// just past the `${` that interrupts it.
fn skip_template_text(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'\\' => i += 2,
            b'`' => return i + 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => return i + 2,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index just past the regular expression literal at `start` (its flags included).
fn skip_regex(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    let mut in_class = false;
    while let Some(&byte) = bytes.get(i) {
        if line_break_len(bytes, i) > 0 {
            return i; // unterminated: leave the error to the browser
        }
        match byte {
            b'\\' => i += 2,
            b'[' => {
                in_class = true;
                i += 1;
            }
            b']' => {
                in_class = false;
                i += 1;
            }
            b'/' if !in_class => {
                i += 1;
                while bytes.get(i).is_some_and(|&b| b.is_ascii_alphabetic()) {
                    i += 1;
                }
                return i;
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::minify_js;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the bytes, nothing panics, nothing grows and every line break stays.
        #[test]
        fn any_input_keeps_its_lines(
            source in "[ -~\n\r\t]{0,200}|\\PC{0,100}|(//|/\\*|\\*/|`|\\$\\{|[{}]|'|\"|/|\\\\|\n|\r|\u{2028}| |[a1.]|[()=+-]|return )*"
        ) {
            let minified = minify_js(&source);
            let breaks = |text: &str| text.bytes().filter(|&b| b == b'\n' || b == b'\r').count();
            prop_assert_eq!(breaks(&minified), breaks(&source));
            prop_assert!(minified.len() <= source.len());
        }
    }

    #[test]
    fn comments_and_indentation_go_and_every_line_stays() {
        let source =
            "// header\nfunction f(a, b) {\n  /* two\n     lines */\n  return a + b; // sum\n}\n";
        let minified = minify_js(source);
        assert_eq!(minified, "\nfunction f(a,b){\n\n\nreturn a+b;\n}\n");
        assert_eq!(minified.lines().count(), source.lines().count());
    }

    #[test]
    fn spaces_that_separate_tokens_stay() {
        assert_eq!(minify_js("let x = a + +b - -c;"), "let x=a+ +b- -c;");
        assert_eq!(
            minify_js("const y = 1 .toString();"),
            "const y=1 .toString();"
        );
        assert_eq!(minify_js("a /* c */ b"), "a b");
        assert_eq!(
            minify_js("x = a / /re/.source.length;"),
            "x=a/ /re/.source.length;"
        );
        assert_eq!(minify_js("if (a) { b(); }"), "if(a){b();}");
    }

    #[test]
    fn strings_templates_and_regexes_are_copied_as_they_are() {
        let cases = [
            "s = 'it\\'s // not a comment';",
            "s = \"/* nor this */\";",
            "t = `a ${ b + `inner ${ c } // text` } /* text */ ${ {d: 1}.d }`;",
            "ok = /[/]\\/ // not a comment/g.test(s);",
            "return /a b/.test(x);",
        ];
        for case in cases {
            let minified = minify_js(case);
            for literal in [
                "// not a comment",
                "/* nor this */",
                " // text`",
                " /* text */ ",
            ] {
                if case.contains(literal) {
                    assert!(minified.contains(literal), "{case:?} became {minified:?}");
                }
            }
        }
        assert_eq!(minify_js("return /a b/.test(x);"), "return/a b/.test(x);");
        assert_eq!(
            minify_js(cases[2]),
            "t=`a ${b+`inner ${c} // text`} /* text */ ${{d:1}.d}`;"
        );
        assert_eq!(minify_js("t = `x ${ {a: 1}.a } y`;"), "t=`x ${{a:1}.a} y`;");
    }

    #[test]
    fn division_is_not_mistaken_for_a_regex() {
        assert_eq!(minify_js("x = (a) / 2 / 3; // c"), "x=(a)/ 2/ 3;");
        assert_eq!(minify_js("x = i++ / 2; // c"), "x=i++/ 2;");
        assert_eq!(minify_js("x = a[1] / b; // c"), "x=a[1]/ b;");
    }

    #[test]
    fn unreadable_input_is_copied_not_lost() {
        assert_eq!(minify_js("a = 1; /* open"), "a=1;/* open");
        assert_eq!(minify_js("s = 'open\nb = 2;"), "s='open\nb=2;");
        assert_eq!(minify_js("`open ${"), "`open ${");
        assert_eq!(minify_js("é = 'ü' // ✓"), "é='ü'");
        // Every line terminator ends a line comment and stays; a block comment holding one
        // ends a statement as the terminator would.
        assert_eq!(minify_js("a // c\rb"), "a\rb");
        assert_eq!(minify_js("a // c\u{2028}b"), "a\u{2028}b");
        assert_eq!(minify_js("return /* \u{2029} */ x"), "return\u{2029}x");
        assert_eq!(minify_js("é in x"), "é in x");
    }
}
