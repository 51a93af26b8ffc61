//! Hostile input, generated: the EC2 query parser, filters, the signature
//! verifiers, the XML renderer and the security-group rule parser never
//! panic, and what they accept stays well-formed. Runs 256 cases per
//! property in `.ci/run`; `PROPTEST_CASES=100000 cargo test hostile` by hand.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use stratus_api::auth::{SignedRequest, claim, verify};
use stratus_api::ec2::filters::glob;
use stratus_api::ec2::params::Params;
use stratus_api::ec2::xml::Xml;
use stratus_rpc::wire::firewall::{IngressRule, RuleSpec};

proptest! {
    #[test]
    fn the_query_parser_takes_any_bytes(body in proptest::collection::vec(any::<u8>(), 0..2048), name in ".{0,40}") {
        let p = Params::parse(&body);
        let _ = p.get(&name);
        let _ = p.int(&name);
        let _ = p.flag(&name);
        let _ = p.list(&name);
        let _ = p.structs(&name);
        let _ = stratus_api::ec2::filters::parse(&p, &["instance-id"]);
    }

    #[test]
    fn numbered_parameters_come_back_in_order(values in proptest::collection::vec("[a-z0-9]{1,8}", 1..50)) {
        let form: String = values
            .iter()
            .enumerate()
            .rev()
            .map(|(i, v)| format!("InstanceId.{}={v}&", i + 1))
            .collect();
        let p = Params::parse(form.as_bytes());
        prop_assert_eq!(p.list("InstanceId").expect("list"), values);
    }

    #[test]
    fn globs_never_panic_or_run_away(pattern in "[a*?\\\\b]{0,40}", text in "[ab]{0,200}") {
        let _ = glob(&pattern, &text);
    }

    #[test]
    fn the_verifiers_take_any_request(
        method in "(GET|POST|PUT|[A-Z]{0,8})",
        path in "[/a-zA-Z%0-9.]{0,40}",
        query in ".{0,200}",
        headers in proptest::collection::vec((".{0,30}", ".{0,200}"), 0..8),
        body in proptest::collection::vec(any::<u8>(), 0..512),
        auth in "(AWS4-HMAC-SHA256 Credential=[A-Z]{1,8}/2026[0-9]{4}/nova/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=[0-9a-f]{0,64})?",
    ) {
        let mut headers = headers;
        if !auth.is_empty() {
            headers.push(("authorization".into(), auth));
            headers.push(("x-amz-date".into(), "20261122T060000Z".into()));
            headers.push(("host".into(), "127.0.0.1:8773".into()));
        }
        let request = SignedRequest { method: &method, path: &path, query: &query, headers: &headers, body: &body };
        let _ = claim(&request);
        // Made-up signatures never verify.
        prop_assert!(verify(&request, "secret", SystemTime::now(), Duration::from_secs(300)).is_err());
    }

    #[test]
    fn rendered_xml_is_always_well_formed(text in any::<String>()) {
        let mut x = Xml::response("DescribeTags", "req-1");
        x.text("value", &text);
        let doc = x.finish("DescribeTags");
        let mut reader = quick_xml::Reader::from_str(&doc);
        loop {
            match reader.read_event() {
                Ok(quick_xml::events::Event::Eof) => break,
                Ok(_) => {}
                Err(e) => prop_assert!(false, "{e} in {doc:?}"),
            }
        }
    }

    #[test]
    fn the_rule_parser_takes_any_spec_and_round_trips_what_it_accepts(
        protocol in "(tcp|udp|icmp|-1|all|6|17|1|[a-z]{0,6})",
        from in proptest::option::of(-2i32..70000),
        to in proptest::option::of(-2i32..70000),
        cidr in proptest::option::of("([0-9]{1,3}\\.){3}[0-9]{1,3}/[0-9]{1,2}|.{0,20}"),
        group in proptest::option::of("sg-[0-9a-f]{8,17}|.{0,20}"),
    ) {
        let spec = RuleSpec { protocol, from_port: from, to_port: to, cidr, source_group: group };
        if let Ok(rule) = IngressRule::try_from(spec) {
            let again = IngressRule::try_from(RuleSpec::from(rule.clone())).expect("a rule's own spec parses");
            prop_assert_eq!(again, rule);
        }
    }
}
