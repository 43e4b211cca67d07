//! Markdown → Telegram HTML, split into messages Telegram accepts.
//!
//! Agents answer in Markdown; Telegram renders a small HTML subset (`b`, `i`, `u`, `s`, `code`, `pre`,
//! `a href`, `blockquote`) and rejects anything else with "can't parse entities". The conversion goes
//! through an intermediate list of pieces (open tag, close tag, text, block break) so that the
//! splitter can cut a long answer into several messages and keep every message well-formed: tags
//! open at a cut are closed at the end of one message and reopened at the start of the next.
//!
//! ## How length is counted
//! Telegram limits a message to 4096 characters *after entity parsing*, i.e. the visible text
//! without the HTML markup, with `&amp;` counting as one character, measured in UTF-16 code units
//! (the unit of its entity offsets). [`utf16_len`] counts exactly that on the unescaped text, so an
//! emoji outside the Basic Multilingual Plane counts 2. This is conservative: where Telegram counts
//! fewer (it strips leading and trailing whitespace) a chunk is only shorter than the limit.
//! Markup is not counted; it has no separate limit in the Bot API.

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag as MdTag, TagEnd};

/// Telegram's limit for the text of one message, in UTF-16 code units after entity parsing.
pub const MESSAGE_LIMIT: usize = 4096;

/// The smallest limit the splitter works with (room for any character and a little text).
const MIN_LIMIT: usize = 8;

/// One message of a split answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The message as Telegram HTML (`parse_mode: HTML`), tags balanced.
    pub html: String,
    /// The same message as plain text: what Telegram shows, used when it refuses the HTML.
    pub text: String,
}

/// Length of `s` as Telegram counts it: UTF-16 code units.
pub fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Converts Markdown to one Telegram HTML string, without a length limit.
pub fn markdown_to_html(markdown: &str) -> String {
    split_pieces(&to_pieces(markdown), usize::MAX)
        .into_iter()
        .next()
        .map(|c| c.html)
        .unwrap_or_default()
}

/// Converts Markdown to Telegram HTML messages whose visible text is at most `limit` UTF-16 code
/// units each (use [`MESSAGE_LIMIT`]). Cuts prefer block boundaries, then line breaks, then spaces.
/// Empty input gives no chunk.
pub fn markdown_to_chunks(markdown: &str, limit: usize) -> Vec<Chunk> {
    split_pieces(&to_pieces(markdown), limit.max(MIN_LIMIT))
}

/// An HTML tag of Telegram's subset, with its one attribute if it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Tag {
    name: &'static str,
    attr: Option<(&'static str, String)>,
}

impl Tag {
    fn plain(name: &'static str) -> Self {
        Tag { name, attr: None }
    }

    fn write_open(&self, out: &mut String) {
        out.push('<');
        out.push_str(self.name);
        if let Some((key, value)) = &self.attr {
            out.push(' ');
            out.push_str(key);
            out.push_str("=\"");
            escape_into(value, true, out);
            out.push('"');
        }
        out.push('>');
    }

    fn write_close(&self, out: &mut String) {
        out.push_str("</");
        out.push_str(self.name);
        out.push('>');
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Open(Tag),
    Close,
    /// Unescaped text.
    Text(String),
    /// Newlines between blocks or lines: the preferred places to cut.
    Break(usize),
}

fn escape_into(text: &str, attribute: bool, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// An element open while converting: whether it produced a tag, and whether it came from inline
/// HTML written by the model (those are closed when the Markdown element around them ends).
struct OpenElement {
    emitted: bool,
    from_html: Option<&'static str>,
}

#[derive(Default)]
struct Builder {
    pieces: Vec<Piece>,
    open: Vec<OpenElement>,
    /// Newlines owed before the next text.
    pending: usize,
    has_text: bool,
    /// Next number of each open list (`None` for bullets).
    lists: Vec<Option<u64>>,
    quote_depth: usize,
    /// Text of the code block being read; emitted whole at its end.
    code: Option<String>,
    cell: usize,
    /// For each open image: where its pieces start and its URL (shown when it has no alt text).
    images: Vec<(usize, String)>,
}

impl Builder {
    fn flush(&mut self) {
        if self.has_text && self.pending > 0 {
            self.pieces.push(Piece::Break(self.pending));
        }
        self.pending = 0;
    }

    fn text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        self.flush();
        if let Some(Piece::Text(last)) = self.pieces.last_mut() {
            last.push_str(text);
        } else {
            self.pieces.push(Piece::Text(text.to_string()));
        }
        self.has_text = true;
    }

    fn owe(&mut self, newlines: usize) {
        self.pending = self.pending.max(newlines);
    }

    fn open(&mut self, tag: Option<Tag>) {
        self.open_element(tag, None);
    }

    fn open_element(&mut self, tag: Option<Tag>, from_html: Option<&'static str>) {
        let emitted = tag.is_some();
        if let Some(tag) = tag {
            self.flush();
            self.pieces.push(Piece::Open(tag));
        }
        self.open.push(OpenElement { emitted, from_html });
    }

    fn close_top(&mut self) {
        if let Some(element) = self.open.pop() {
            if element.emitted {
                self.pieces.push(Piece::Close);
            }
        }
    }

    /// Ends the innermost Markdown element, first closing inline HTML tags left open inside it.
    fn close(&mut self) {
        while self.open.last().is_some_and(|e| e.from_html.is_some()) {
            self.close_top();
        }
        self.close_top();
    }

    fn start(&mut self, tag: MdTag<'_>) {
        match tag {
            MdTag::Heading { .. } => self.open(Some(Tag::plain("b"))),
            MdTag::BlockQuote(_) => {
                // Telegram refuses nested blockquotes: only the outermost one becomes a tag.
                let tag = (self.quote_depth == 0).then(|| Tag::plain("blockquote"));
                self.quote_depth += 1;
                self.open(tag);
            }
            MdTag::CodeBlock(kind) => {
                self.open(Some(Tag::plain("pre")));
                let language = match kind {
                    CodeBlockKind::Fenced(info) => {
                        info.split_whitespace().next().unwrap_or("").to_string()
                    }
                    CodeBlockKind::Indented => String::new(),
                };
                let code = (!language.is_empty()).then(|| Tag {
                    name: "code",
                    attr: Some(("class", format!("language-{language}"))),
                });
                self.open(code);
                self.code = Some(String::new());
            }
            MdTag::List(start) => self.lists.push(start),
            MdTag::Item => {
                self.owe(1);
                let depth = self.lists.len().saturating_sub(1);
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let marker = format!("{n}. ");
                        *n += 1;
                        marker
                    }
                    _ => "• ".to_string(),
                };
                self.text(&format!("{}{marker}", "  ".repeat(depth)));
            }
            MdTag::TableHead | MdTag::TableRow => self.cell = 0,
            MdTag::TableCell => {
                if self.cell > 0 {
                    self.text(" | ");
                }
                self.cell += 1;
            }
            MdTag::Emphasis => self.open(Some(Tag::plain("i"))),
            MdTag::Strong => self.open(Some(Tag::plain("b"))),
            MdTag::Strikethrough => self.open(Some(Tag::plain("s"))),
            MdTag::Link { dest_url, .. } => self.open(link(&dest_url)),
            MdTag::Image { dest_url, .. } => {
                self.images.push((self.pieces.len(), dest_url.to_string()));
                self.open(link(&dest_url));
            }
            MdTag::FootnoteDefinition(label) => {
                self.text(&format!("[^{label}]: "));
                self.open(None);
            }
            // Paragraphs, tables, definition lists, super/subscript: no tag of their own.
            _ => self.open(None),
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::List(_) => {
                self.lists.pop();
                self.owe(if self.lists.is_empty() { 2 } else { 1 });
                return;
            }
            TagEnd::Item | TagEnd::TableHead | TagEnd::TableRow => {
                self.owe(1);
                return;
            }
            TagEnd::CodeBlock => {
                let code = self.code.take().unwrap_or_default();
                self.text(code.trim_end_matches('\n'));
                self.close(); // code
                self.close(); // pre
                self.owe(2);
                return;
            }
            TagEnd::TableCell => return,
            TagEnd::Image => {
                if let Some((start, url)) = self.images.pop() {
                    let has_alt = self.pieces[start..]
                        .iter()
                        .any(|p| matches!(p, Piece::Text(_)));
                    if !has_alt {
                        self.text(&url);
                    }
                }
            }
            _ => {}
        }
        self.close();
        match tag {
            TagEnd::BlockQuote(_) => {
                self.quote_depth = self.quote_depth.saturating_sub(1);
                self.owe(2);
            }
            TagEnd::Paragraph
            | TagEnd::Heading(_)
            | TagEnd::HtmlBlock
            | TagEnd::Table
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList => self.owe(2),
            TagEnd::DefinitionListTitle | TagEnd::DefinitionListDefinition => self.owe(1),
            _ => {}
        }
    }

    /// Inline HTML the model wrote: line breaks and the simple formatting tags Telegram knows are
    /// kept; anything else is shown as the text it is.
    fn inline_html(&mut self, html: &str) {
        let lower = html.trim().to_ascii_lowercase();
        if matches!(lower.as_str(), "<br>" | "<br/>" | "<br />") {
            self.owe(1);
            return;
        }
        let inner = lower.trim_start_matches('<').trim_end_matches('>');
        let (closing, name) = match inner.strip_prefix('/') {
            Some(name) => (true, name.trim()),
            None => (false, inner.trim()),
        };
        let Some(target) = simple_tag(name) else {
            self.text(html);
            return;
        };
        if !closing {
            self.open_element(Some(Tag::plain(target)), Some(target));
        } else if self.open.last().and_then(|e| e.from_html) == Some(target) {
            self.close_top();
        } else {
            // A closing tag that does not match what is open would unbalance the message.
            self.text(html);
        }
    }
}

/// The Telegram tag for a simple inline HTML tag name.
fn simple_tag(name: &str) -> Option<&'static str> {
    Some(match name {
        "b" | "strong" => "b",
        "i" | "em" => "i",
        "u" | "ins" => "u",
        "s" | "strike" | "del" => "s",
        "code" => "code",
        _ => return None,
    })
}

/// A link tag, for the URL schemes Telegram accepts in `href`; other links show as text only.
fn link(url: &str) -> Option<Tag> {
    let lower = url.to_ascii_lowercase();
    let allowed = ["http://", "https://", "tg://", "mailto:"]
        .iter()
        .any(|scheme| lower.starts_with(scheme));
    allowed.then(|| Tag {
        name: "a",
        attr: Some(("href", url.to_string())),
    })
}

fn to_pieces(markdown: &str) -> Vec<Piece> {
    let options = Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TABLES
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    let mut b = Builder::default();
    for event in Parser::new_ext(markdown, options) {
        match event {
            Event::Start(tag) => b.start(tag),
            Event::End(tag) => b.end(tag),
            Event::Text(text) => match b.code.as_mut() {
                Some(code) => code.push_str(&text),
                None => b.text(&text),
            },
            Event::Code(code) | Event::InlineMath(code) | Event::DisplayMath(code) => {
                b.open(Some(Tag::plain("code")));
                b.text(&code);
                b.close();
            }
            Event::InlineHtml(html) => b.inline_html(&html),
            Event::Html(html) => {
                // HTML blocks arrive line by line, each with its newline.
                b.text(html.trim_end_matches('\n'));
                if html.ends_with('\n') {
                    b.owe(1);
                }
            }
            Event::FootnoteReference(label) => b.text(&format!("[^{label}]")),
            Event::SoftBreak | Event::HardBreak => b.owe(1),
            Event::Rule => {
                b.text("———");
                b.owe(2);
            }
            Event::TaskListMarker(done) => b.text(if done { "☑ " } else { "☐ " }),
        }
    }
    while !b.open.is_empty() {
        b.close_top();
    }
    b.pieces
}

/// Where the current message could end: just before a block break.
#[derive(Clone)]
struct Checkpoint {
    /// The piece to resume from in the next message.
    resume: usize,
    html_len: usize,
    text_len: usize,
    len: usize,
    stack: Vec<Tag>,
}

struct Splitter {
    limit: usize,
    chunks: Vec<Chunk>,
    html: String,
    text: String,
    /// Visible length of the current message, in UTF-16 code units.
    len: usize,
    stack: Vec<Tag>,
    checkpoint: Option<Checkpoint>,
}

impl Splitter {
    /// Ends the current message (closing its open tags) and starts the next (reopening them).
    fn cut(&mut self) {
        let mut html = std::mem::take(&mut self.html);
        for tag in self.stack.iter().rev() {
            tag.write_close(&mut html);
        }
        let text = std::mem::take(&mut self.text);
        if !text.trim().is_empty() {
            self.chunks.push(Chunk { html, text });
        }
        for tag in &self.stack {
            tag.write_open(&mut self.html);
        }
        self.len = 0;
        self.checkpoint = None;
    }

    fn push_text(&mut self, text: &str) {
        escape_into(text, false, &mut self.html);
        self.text.push_str(text);
        self.len += utf16_len(text);
    }
}

fn split_pieces(pieces: &[Piece], limit: usize) -> Vec<Chunk> {
    let mut s = Splitter {
        limit,
        chunks: Vec::new(),
        html: String::new(),
        text: String::new(),
        len: 0,
        stack: Vec::new(),
        checkpoint: None,
    };
    let mut i = 0;
    // Bytes of pieces[i] already placed in an earlier message (a text cut in the middle).
    let mut offset = 0;
    while i < pieces.len() {
        match &pieces[i] {
            Piece::Open(tag) => {
                tag.write_open(&mut s.html);
                s.stack.push(tag.clone());
            }
            Piece::Close => {
                if let Some(tag) = s.stack.pop() {
                    tag.write_close(&mut s.html);
                }
            }
            Piece::Break(n) => {
                if s.len + n > s.limit {
                    // The break itself is the cut.
                    s.cut();
                } else if s.len > 0 {
                    s.checkpoint = Some(Checkpoint {
                        resume: i + 1,
                        html_len: s.html.len(),
                        text_len: s.text.len(),
                        len: s.len,
                        stack: s.stack.clone(),
                    });
                    s.push_text(&"\n".repeat(*n));
                }
            }
            Piece::Text(text) => {
                let mut rest = &text[offset..];
                if s.len == 0 && !s.stack.iter().any(|t| t.name == "pre") {
                    // A message does not start with the space a cut left behind (code keeps its
                    // indentation).
                    let trimmed = rest.trim_start();
                    offset += rest.len() - trimmed.len();
                    rest = trimmed;
                }
                let room = s.limit.saturating_sub(s.len);
                if utf16_len(rest) <= room {
                    s.push_text(rest);
                } else if let Some(cp) = s.checkpoint.clone().filter(|cp| cp.len >= s.limit / 4) {
                    // End the message at the last block boundary and read on from there.
                    s.html.truncate(cp.html_len);
                    s.text.truncate(cp.text_len);
                    s.stack = cp.stack;
                    s.cut();
                    i = cp.resume;
                    offset = 0;
                    continue;
                } else if s.len >= s.limit - s.limit / 4 {
                    // Little room left: start this text in a fresh message.
                    s.cut();
                    continue;
                } else {
                    let (take, skip) = cut_point(rest, room);
                    s.push_text(&rest[..take]);
                    s.cut();
                    offset += take + skip;
                    continue;
                }
            }
        }
        i += 1;
        offset = 0;
    }
    s.cut();
    s.chunks
}

/// How many bytes of `text` to put in a message with `room` UTF-16 units left, and how many
/// whitespace bytes after them to drop: the last newline, else the last space, in the second half
/// of the room; else as much as fits.
fn cut_point(text: &str, room: usize) -> (usize, usize) {
    let mut fits = 0;
    let mut used = 0;
    for (index, c) in text.char_indices() {
        if used + c.len_utf16() > room {
            break;
        }
        used += c.len_utf16();
        fits = index + c.len_utf8();
    }
    let prefix = &text[..fits];
    let half = fits / 2;
    for separator in ['\n', ' '] {
        if let Some(at) = prefix.rfind(separator).filter(|&at| at > 0 && at >= half) {
            return (at, separator.len_utf8());
        }
    }
    (fits, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes() {
        assert_eq!(markdown_to_html("a < b & c > d"), "a &lt; b &amp; c &gt; d");
        assert_eq!(
            markdown_to_html("[x](https://e.com/?a=1&b=\"2\")"),
            "<a href=\"https://e.com/?a=1&amp;b=&quot;2&quot;\">x</a>"
        );
    }

    #[test]
    fn cut_point_prefers_newlines_then_spaces() {
        assert_eq!(cut_point("aaaaaaa\nbbbb cccc", 14), (7, 1));
        // A newline in the first half of the room would waste it: the last space wins.
        assert_eq!(cut_point("aaaa\nbbbb cccc", 12), (9, 1));
        assert_eq!(cut_point("aaaa bbbb cccc", 12), (9, 1));
        assert_eq!(cut_point("aaaaaaaaaaaaaa", 5), (5, 0));
        // Never inside a surrogate pair: 😀 is 2 UTF-16 units.
        assert_eq!(cut_point("a😀b", 2), (1, 0));
    }
}
