//! Markdown → Telegram HTML, and the split at Telegram's message limit. Every message is checked
//! with the Bot API double's HTML rules (allowed tags, balanced, entities).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap in a test is a failed test

mod support;

use nitejar_builtins::telegram::format::{
    markdown_to_chunks, markdown_to_html, utf16_len, Chunk, MESSAGE_LIMIT,
};
use support::telegram_api::visible_text;

fn html(md: &str) -> String {
    markdown_to_html(md)
}

#[test]
fn inline_formatting_maps_to_telegram_tags() {
    assert_eq!(
        html("**b** *i* _i_ ~~s~~ `c<1>` [l](https://x.dev/a?b=1&c=2)"),
        "<b>b</b> <i>i</i> <i>i</i> <s>s</s> <code>c&lt;1&gt;</code> <a href=\"https://x.dev/a?b=1&amp;c=2\">l</a>"
    );
    assert_eq!(html("***both***"), "<i><b>both</b></i>");
    assert_eq!(html("snake_case_name stays"), "snake_case_name stays");
}

#[test]
fn text_is_escaped() {
    assert_eq!(html("1 < 2 && 3 > 2"), "1 &lt; 2 &amp;&amp; 3 &gt; 2");
    assert_eq!(html("AT&T"), "AT&amp;T");
}

#[test]
fn blocks_become_lines_telegram_can_show() {
    assert_eq!(html("# Title\n\nText"), "<b>Title</b>\n\nText");
    assert_eq!(html("- a\n- b\n  - c"), "• a\n• b\n  • c");
    assert_eq!(html("3. three\n4. four"), "3. three\n4. four");
    assert_eq!(html("- [x] done\n- [ ] todo"), "• ☑ done\n• ☐ todo");
    assert_eq!(
        html("> quoted\n> lines"),
        "<blockquote>quoted\nlines</blockquote>"
    );
    // Telegram refuses nested blockquotes: the inner one is flattened.
    assert_eq!(html("> a\n>> b"), "<blockquote>a\n\nb</blockquote>");
    assert_eq!(
        html("```rust\nfn main() {}\n```"),
        "<pre><code class=\"language-rust\">fn main() {}</code></pre>"
    );
    assert_eq!(html("    indented"), "<pre>indented</pre>");
    assert_eq!(html("| a | b |\n|---|---|\n| 1 | 2 |"), "a | b\n1 | 2");
    assert_eq!(html("one\n\n---\n\ntwo"), "one\n\n———\n\ntwo");
    assert_eq!(html("line\nbreak"), "line\nbreak");
}

#[test]
fn links_telegram_would_refuse_become_text() {
    assert_eq!(html("[relative](docs/x.md)"), "relative");
    assert_eq!(html("[js](javascript:alert(1))"), "js");
    assert_eq!(
        html("<https://auto.link>"),
        "<a href=\"https://auto.link\">https://auto.link</a>"
    );
    assert_eq!(
        html("![](https://img.dev/x.png)"),
        "<a href=\"https://img.dev/x.png\">https://img.dev/x.png</a>"
    );
    assert_eq!(
        html("![chart](https://img.dev/x.png)"),
        "<a href=\"https://img.dev/x.png\">chart</a>"
    );
}

#[test]
fn inline_html_keeps_what_telegram_knows_and_shows_the_rest() {
    assert_eq!(html("a<br>b"), "a\nb");
    assert_eq!(
        html("<u>under</u> <ins>line</ins>"),
        "<u>under</u> <u>line</u>"
    );
    assert_eq!(html("<span>x</span>"), "&lt;span&gt;x&lt;/span&gt;");
    // An unmatched close is shown, an unclosed open is closed at the end of its paragraph.
    assert_eq!(html("x</b> y"), "x&lt;/b&gt; y");
    assert_eq!(html("<b>open\n\nnext"), "<b>open</b>\n\nnext");
}

#[test]
fn a_showcase_answer_converts_to_valid_telegram_html() {
    let md = include_str!("fixtures/telegram/answer.md");
    let out = html(md);
    visible_text(&out).expect("Telegram accepts it");
    insta::assert_snapshot!(out);
}

// ---- the split --------------------------------------------------------------------------------------

/// Checks every chunk against Telegram's rules and that no visible character was lost.
fn check_split(md: &str, limit: usize) -> Vec<Chunk> {
    let chunks = markdown_to_chunks(md, limit);
    for (i, chunk) in chunks.iter().enumerate() {
        let visible = visible_text(&chunk.html).unwrap_or_else(|e| {
            panic!(
                "chunk {i} is not valid Telegram HTML ({e}):\n{}",
                chunk.html
            )
        });
        assert_eq!(
            visible, chunk.text,
            "chunk {i}: the plain text is what the HTML shows"
        );
        assert!(
            utf16_len(&chunk.text) <= limit,
            "chunk {i} has {} UTF-16 units, limit {limit}",
            utf16_len(&chunk.text)
        );
        assert!(!chunk.text.trim().is_empty(), "chunk {i} is empty");
    }
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let whole = visible_text(&html(md)).unwrap();
    let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        squeeze(&joined),
        squeeze(&whole),
        "text was lost or repeated"
    );
    chunks
}

fn long_document() -> String {
    let mut md = String::from("# A long answer\n\n");
    for i in 0..40 {
        md.push_str(&format!(
            "Paragraph {i} has **bold text that goes on for a while**, some _emphasis_, a \
             [link](https://example.com/{i}?a=1&b=2), `code <T>` and 😀 emoji that count twice. "
        ));
        md.push_str(&"More words to fill the line. ".repeat(i % 7));
        md.push_str("\n\n");
        if i % 9 == 0 {
            md.push_str(
                "> A quote that\n> spans lines\n\n- item one\n- item **two**\n  - nested\n\n",
            );
        }
    }
    md
}

#[test]
fn a_short_answer_is_one_message() {
    let chunks = check_split("Just **one** line.", MESSAGE_LIMIT);
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].html, "Just <b>one</b> line.");
    assert!(markdown_to_chunks("", MESSAGE_LIMIT).is_empty());
    assert!(markdown_to_chunks(" \n\n ", MESSAGE_LIMIT).is_empty());
}

#[test]
fn long_answers_split_at_the_limit_with_balanced_tags_and_no_lost_text() {
    let md = long_document();
    let chunks = check_split(&md, MESSAGE_LIMIT);
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    // Cuts fall between blocks: no message but the first starts in the middle of a paragraph.
    for chunk in &chunks[1..] {
        assert!(
            chunk.text.starts_with("Paragraph")
                || chunk.text.starts_with("A quote")
                || chunk.text.starts_with('•'),
            "starts mid-paragraph: {:?}",
            &chunk.text[..40.min(chunk.text.len())]
        );
    }
    // And the messages are reasonably full.
    for chunk in &chunks[..chunks.len() - 1] {
        assert!(utf16_len(&chunk.text) > MESSAGE_LIMIT / 2);
    }
    for limit in [40, 97, 256, 1000] {
        check_split(&md, limit);
    }
}

#[test]
fn a_tag_open_at_a_cut_is_closed_and_reopened() {
    let md = format!("**{}end**", "bold words ".repeat(800));
    let chunks = check_split(&md, MESSAGE_LIMIT);
    assert!(chunks.len() >= 3);
    for chunk in &chunks {
        assert!(
            chunk.html.starts_with("<b>") && chunk.html.ends_with("</b>"),
            "{}",
            &chunk.html[..20]
        );
    }

    let code = format!("```rust\n{}```", "let x = a < b && c > d;\n".repeat(400));
    let chunks = check_split(&code, MESSAGE_LIMIT);
    assert!(chunks.len() >= 3);
    for chunk in &chunks {
        assert!(chunk
            .html
            .starts_with("<pre><code class=\"language-rust\">"));
        assert!(chunk.html.ends_with("</code></pre>"));
    }

    let quote = format!("> {}", "quoted line\n> ".repeat(600));
    for chunk in check_split(&quote, MESSAGE_LIMIT) {
        assert!(chunk.html.starts_with("<blockquote>") && chunk.html.ends_with("</blockquote>"));
    }
}

#[test]
fn text_without_spaces_is_cut_hard_and_never_inside_a_character() {
    let word = "x".repeat(10_000);
    let chunks = check_split(&word, MESSAGE_LIMIT);
    assert_eq!(chunks.len(), 3);
    assert_eq!(utf16_len(&chunks[0].text), MESSAGE_LIMIT);

    // Each 😀 is two UTF-16 units: 3000 of them are 6000 units, two messages.
    let emoji = "😀".repeat(3000);
    let chunks = check_split(&emoji, MESSAGE_LIMIT);
    assert_eq!(chunks.len(), 2);
    assert_eq!(utf16_len(&chunks[0].text), MESSAGE_LIMIT);

    // Escaping does not count: 3000 `&` are 3000 characters, one message.
    let amps = "&".repeat(3000);
    let chunks = check_split(&amps, MESSAGE_LIMIT);
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].html, "&amp;".repeat(3000));
}

#[test]
fn odd_inputs_still_split_cleanly() {
    let cases = [
        "- item\n".repeat(2000),
        "| a | b |\n|---|---|\n".to_string() + &"| 1 | 2 |\n".repeat(1500),
        "[link](https://example.com) ".repeat(900),
        "> > nested quote\n".repeat(700),
        "<u>".repeat(300) + &"under ".repeat(900),
        format!("`{}`", "inline code ".repeat(700)),
    ];
    for md in &cases {
        check_split(md, MESSAGE_LIMIT);
        check_split(md, 64);
    }
}
