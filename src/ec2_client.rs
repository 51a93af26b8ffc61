//! A small EC2 client of our own, for the benchmark and the all-in-one's
//! demo: form POSTs signed with SigV4 by the API's own verifier code, and
//! the text of response elements read with quick-xml.

use std::time::SystemTime;

use quick_xml::events::Event;
use stratus_api::auth::SignedRequest;

/// A request failed: transport, signing, or an EC2 error.
#[derive(Debug, thiserror::Error)]
pub enum Ec2ClientError {
    /// The request did not complete.
    #[error("sending the request to the EC2 endpoint")]
    Transport(#[source] reqwest::Error),
    /// The request could not be signed.
    #[error("signing the request")]
    Signing(#[source] stratus_api::auth::AuthError),
    /// The API answered with an error.
    #[error("{code}: {message}")]
    Api {
        /// The EC2 error code.
        code: String,
        /// Its message.
        message: String,
    },
}

/// Signs and sends EC2 requests as one access key.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    region: String,
    key: String,
    secret: String,
}

impl Client {
    /// A client of `endpoint` (`http://host:port/`) signing for `region`.
    pub fn new(endpoint: &str, region: &str, key: &str, secret: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            endpoint: endpoint.to_owned(),
            host: endpoint
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
            region: region.to_owned(),
            key: key.to_owned(),
            secret: secret.to_owned(),
        }
    }

    /// Runs `action` with `params`; the response document.
    pub async fn action(
        &self,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<String, Ec2ClientError> {
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action)
                .append_pair("Version", "2016-11-15");
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish()
        };
        self.call(&form).await
    }

    /// POSTs a form body signed with SigV4; the body of a 200 answer.
    pub async fn call(&self, form: &str) -> Result<String, Ec2ClientError> {
        let amz_date = humantime::format_rfc3339_seconds(SystemTime::now())
            .to_string()
            .replace(['-', ':'], "");
        let date = amz_date.get(..8).unwrap_or_default().to_owned();
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let authorization = |signature: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{date}/{}/ec2/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature={signature}",
                self.key, self.region
            )
        };
        let headers = vec![
            ("content-type".to_owned(), content_type.to_owned()),
            ("host".to_owned(), self.host.clone()),
            ("x-amz-date".to_owned(), amz_date.clone()),
            ("authorization".to_owned(), authorization(&"0".repeat(64))),
        ];
        let signature = stratus_api::auth::sigv4::expected_signature(
            &SignedRequest {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body: form.as_bytes(),
            },
            &self.secret,
        )
        .map_err(Ec2ClientError::Signing)?;
        let response = self
            .http
            .post(&self.endpoint)
            .header("content-type", content_type)
            .header("x-amz-date", amz_date)
            .header("authorization", authorization(&signature))
            .body(form.to_owned())
            .send()
            .await
            .map_err(Ec2ClientError::Transport)?;
        let ok = response.status().is_success();
        let body = response.text().await.map_err(Ec2ClientError::Transport)?;
        if ok {
            return Ok(body);
        }
        Err(Ec2ClientError::Api {
            code: texts(&body, "Code").into_iter().next().unwrap_or_default(),
            message: texts(&body, "Message").into_iter().next().unwrap_or(body),
        })
    }
}

/// The text of the first element named `name` in `xml`, if any.
pub fn first_text(xml: &str, name: &str) -> Option<String> {
    texts(xml, name).into_iter().next()
}

/// The texts of every element named `name` in `xml`, in document order.
pub fn texts(xml: &str, name: &str) -> Vec<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut found = Vec::new();
    // The text of the element being read, if it is one of ours.
    let mut current: Option<String> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                current = (e.local_name().as_ref() == name).then(String::new);
            }
            Ok(Event::Text(t)) => {
                if let Some(text) = current.as_mut() {
                    text.push_str(&t.into_inner());
                }
            }
            // Entities arrive as events of their own.
            Ok(Event::GeneralRef(r)) => {
                if let Some(text) = current.as_mut() {
                    let raw = format!("&{};", r.into_inner());
                    text.push_str(
                        &quick_xml::escape::unescape(&raw)
                            .map(|c| c.into_owned())
                            .unwrap_or(raw),
                    );
                }
            }
            Ok(Event::End(_)) => found.extend(current.take()),
            Ok(Event::Eof) | Err(_) => return found,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_texts_are_read_in_order_and_unescaped() {
        let xml = "<R><a>1</a><b><a>x &amp; y</a></b><a></a></R>";
        assert_eq!(texts(xml, "a"), ["1", "x & y", ""]);
        assert!(texts("not xml <", "a").is_empty());
    }
}
