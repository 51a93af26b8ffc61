//! EC2 response XML: elements in the EC2 namespace, text escaped by
//! quick-xml, characters XML cannot carry replaced, so no input can break
//! the document.

use std::borrow::Cow;

/// The EC2 API version whose shapes the responses follow.
pub const API_VERSION: &str = "2016-11-15";

/// Builds one response document.
#[derive(Debug)]
pub struct Xml {
    out: String,
}

/// Text XML 1.0 can carry: no NUL or other C0 controls but tab, CR, LF.
fn clean(text: &str) -> Cow<'_, str> {
    let ok = |c: char| {
        (c >= ' ' || matches!(c, '\t' | '\n' | '\r')) && c != '\u{FFFE}' && c != '\u{FFFF}'
    };
    if text.chars().all(ok) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(
            text.chars()
                .map(|c| if ok(c) { c } else { '\u{FFFD}' })
                .collect(),
        )
    }
}

/// `text` escaped for element content. A carriage return goes out as a
/// character reference: a parser turns a raw CR (and CR LF) into LF, so the
/// client would read back a different value than was stored.
fn escaped(text: &str) -> Cow<'_, str> {
    let out = quick_xml::escape::escape(clean(text));
    if out.contains('\r') {
        Cow::Owned(out.replace('\r', "&#13;"))
    } else {
        out
    }
}

impl Xml {
    /// A `<{action}Response>` document with its request id.
    pub fn response(action: &str, request_id: &str) -> Self {
        let mut xml = Self {
            out: String::with_capacity(1024),
        };
        xml.out
            .push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        xml.out.push_str(&format!(
            "<{action}Response xmlns=\"http://ec2.amazonaws.com/doc/{API_VERSION}/\">"
        ));
        xml.text("requestId", request_id);
        xml
    }

    /// A bare fragment, for documents that are not `…Response` (errors).
    pub fn fragment() -> Self {
        Self { out: String::new() }
    }

    /// The text built so far.
    pub fn into_string(self) -> String {
        self.out
    }

    /// Opens `<name>`.
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// Closes `</name>`.
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// `<name>text</name>`, escaped.
    pub fn text(&mut self, name: &str, text: &str) -> &mut Self {
        self.open(name);
        self.out.push_str(&escaped(text));
        self.close(name)
    }

    /// Bare escaped text inside the open element (lists of strings).
    pub fn out_text(&mut self, text: &str) -> &mut Self {
        self.out.push_str(&escaped(text));
        self
    }

    /// `<name>text</name>` when there is a text.
    pub fn opt(&mut self, name: &str, text: Option<&str>) -> &mut Self {
        if let Some(text) = text {
            self.text(name, text);
        }
        self
    }

    /// `<name>value</name>` for numbers and booleans.
    pub fn value(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        self.text(name, &value.to_string())
    }

    /// `<name><item>…</item>…</name>`, one item per element of `items`.
    pub fn list<T>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Self, T),
    ) -> &mut Self {
        self.open(name);
        for item in items {
            self.open("item");
            each(self, item);
            self.close("item");
        }
        self.close(name)
    }

    /// Closes the response element and returns the document.
    pub fn finish(mut self, action: &str) -> String {
        self.out.push_str(&format!("</{action}Response>"));
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_unrepresentable_characters_replaced() {
        let mut xml = Xml::response("CreateTags", "req-1");
        xml.text("value", "<a href=\"x\">&'\u{0}\u{7}ok</a>");
        let doc = xml.finish("CreateTags");
        assert!(
            doc.contains(
                "<value>&lt;a href=&quot;x&quot;&gt;&amp;&apos;\u{FFFD}\u{FFFD}ok&lt;/a&gt;</value>"
            ),
            "{doc}"
        );
        assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CreateTagsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>req-1</requestId>"));
        assert!(doc.ends_with("</CreateTagsResponse>"));
    }

    #[test]
    fn carriage_returns_survive_end_of_line_normalization() {
        let mut xml = Xml::fragment();
        xml.text("v", "a\r\nb\rc\td\ne");
        assert_eq!(xml.into_string(), "<v>a&#13;\nb&#13;c\td\ne</v>");
    }
}
