//! What a conforming XML 1.0 parser (botocore's expat, say) reads from a
//! response: the document checked for well-formedness (one root, matching
//! end tags, only the predefined entities, only characters XML allows), and
//! each element's own text with references resolved and line ends normalized.

use quick_xml::events::Event;

/// One element: its local name and its own text (not its children's).
pub type Element = (String, String);

/// Characters XML 1.0 allows in a document.
pub fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// The elements of `doc` in document order, or why it is not well-formed.
pub fn read(doc: &str) -> Result<Vec<Element>, String> {
    let mut reader = quick_xml::Reader::from_str(doc);
    let mut out: Vec<Element> = Vec::new();
    // Indexes into `out` of the elements open now.
    let mut open: Vec<usize> = Vec::new();
    let mut roots = 0;
    if let Some(bad) = doc.chars().find(|&c| !xml_char(c)) {
        return Err(format!("U+{:04X} may not appear in XML", u32::from(bad)));
    }
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("{e} at byte {}", reader.buffer_position()))?;
        let mut push_text = |text: &str| -> Result<(), String> {
            match open.last() {
                Some(&i) => {
                    out[i].1.push_str(text);
                    Ok(())
                }
                None if text.trim().is_empty() => Ok(()),
                None => Err(format!("text {text:?} outside the root element")),
            }
        };
        match event {
            Event::Start(e) | Event::Empty(e) if open.is_empty() && roots > 0 => {
                let name = e.local_name().as_ref().to_owned();
                return Err(format!("a second root element <{name}>"));
            }
            Event::Start(e) => {
                check_attributes(&e)?;
                roots += usize::from(open.is_empty());
                out.push((e.local_name().as_ref().to_owned(), String::new()));
                open.push(out.len() - 1);
            }
            Event::Empty(e) => {
                check_attributes(&e)?;
                roots += usize::from(open.is_empty());
                out.push((e.local_name().as_ref().to_owned(), String::new()));
            }
            Event::End(_) => {
                open.pop();
            }
            Event::Text(t) if t.contains("]]>") => {
                return Err("]]> in element content".to_owned());
            }
            Event::Text(t) => push_text(&t.xml10_content())?,
            Event::CData(c) => push_text(&c.xml10_content())?,
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) if xml_char(c) => c.to_string(),
                    Some(c) => return Err(format!("&#{};: not an XML character", u32::from(c))),
                    None => match &*r {
                        "lt" => "<".to_owned(),
                        "gt" => ">".to_owned(),
                        "amp" => "&".to_owned(),
                        "quot" => "\"".to_owned(),
                        "apos" => "'".to_owned(),
                        other => return Err(format!("undeclared entity &{other};")),
                    },
                };
                push_text(&text)?;
            }
            Event::DocType(_) => return Err("a DOCTYPE in a response".to_owned()),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !open.is_empty() {
        return Err(format!("{} element(s) left open", open.len()));
    }
    if roots != 1 {
        return Err(format!("{roots} root elements"));
    }
    Ok(out)
}

fn check_attributes(e: &quick_xml::events::BytesStart<'_>) -> Result<(), String> {
    for attribute in e.attributes().with_checks(true) {
        attribute.map_err(|err| format!("attribute: {err}"))?;
    }
    Ok(())
}

/// The texts of every element called `name`, panicking (with the document)
/// when it is not well-formed.
pub fn texts(doc: &str, name: &str) -> Vec<String> {
    read(doc)
        .unwrap_or_else(|e| panic!("not well-formed XML ({e}):\n{doc}"))
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, text)| text)
        .collect()
}
