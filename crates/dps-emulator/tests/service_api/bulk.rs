//! Bulk operations on enrollments and groups, and queries paged with continuation tokens.

use serde_json::{Value, json};

use crate::api::*;

#[test]
fn bulk_operations_report_each_failure_and_keep_the_successes() {
    let emu = start(vec![]);
    let c = Client::owner(&emu);
    let sym = |id: &str| json!({"registrationId": id, "attestation": {"type": "symmetricKey"}});
    c.put("/enrollments/exists", sym("exists"));
    let (s, r) = c.post(
        "/enrollments",
        json!({"mode": "create", "enrollments": [sym("b1"), sym("exists"), sym("b2"),
               {"registrationId": "bad", "attestation": {"type": "none"}}, sym("bad id!")]}),
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["isSuccessful"], false);
    let errors = r["errors"].as_array().unwrap();
    let by_id = |id: &str| {
        errors
            .iter()
            .find(|e| e["registrationId"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(errors.len(), 3, "{r}");
    assert_eq!(by_id("exists")["errorCode"].as_u64().unwrap() / 1000, 409);
    assert_eq!(by_id("bad")["errorCode"].as_u64().unwrap() / 1000, 400);
    assert!(by_id("bad")["errorStatus"].as_str().unwrap().contains("not supported"));
    assert_eq!(by_id("bad id!")["errorCode"].as_u64().unwrap() / 1000, 400);
    for id in ["b1", "b2", "exists"] {
        assert_eq!(c.get(&format!("/enrollments/{id}")).0, 200, "{id}");
    }
    assert_eq!(c.get("/enrollments/bad").0, 404);
    // updateIfMatchETag: one current etag, one stale; delete: one absent.
    let b1 = c.get("/enrollments/b1").1;
    let mut b2 = c.get("/enrollments/b2").1;
    b2["etag"] = json!("\"stale\"");
    let (_, r) = c.post(
        "/enrollments",
        json!({"mode": "updateIfMatchETag", "enrollments": [b1, b2]}),
    );
    assert_eq!(r["errors"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["errors"][0]["registrationId"], "b2");
    assert_eq!(r["errors"][0]["errorCode"].as_u64().unwrap() / 1000, 412);
    let (_, r) = c.post(
        "/enrollments",
        json!({"mode": "delete", "enrollments": [sym("b1"), sym("never")]}),
    );
    assert_eq!(r["errors"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["errors"][0]["registrationId"], "never");
    assert_eq!(c.get("/enrollments/b1").0, 404);
    // All good: isSuccessful, no errors. Groups answer with enrollmentGroupId.
    let (_, r) = c.post(
        "/enrollments",
        json!({"mode": "update", "enrollments": [sym("b2"), sym("b3")]}),
    );
    assert_eq!(r, json!({"isSuccessful": true, "errors": []}));
    let (_, r) = c.post(
        "/enrollmentGroups",
        json!({"mode": "create", "enrollmentGroups": [{"enrollmentGroupId": "g1", "attestation": {"type": "symmetricKey"}},
               {"enrollmentGroupId": "g1", "attestation": {"type": "symmetricKey"}}]}),
    );
    assert_eq!(r["errors"][0]["enrollmentGroupId"], "g1", "{r}");
    // More than 10, none, or a bad mode: the whole call is refused.
    let eleven: Vec<Value> = (0..11).map(|i| sym(&format!("many-{i}"))).collect();
    let (s, b) = c.post("/enrollments", json!({"mode": "create", "enrollments": eleven}));
    assert_error(s, &b, 400, "1 to 10 records, found 11");
    assert_eq!(c.get("/enrollments/many-0").0, 404);
    let (s, b) = c.post("/enrollments", json!({"mode": "upsert", "enrollments": [sym("x")]}));
    assert_error(s, &b, 400, "mode \"upsert\"");
}

#[test]
fn queries_page_with_continuation_tokens() {
    let emu = start(vec![]);
    let c = Client::owner(&emu);
    let mut expected = Vec::new();
    for chunk in 0..3 {
        let items: Vec<Value> = (0..9)
            .map(|i| {
                let id = format!("page-{:02}", chunk * 9 + i);
                expected.push(id.clone());
                json!({"registrationId": id, "attestation": {"type": "symmetricKey"}})
            })
            .collect();
        let (_, r) = c.post("/enrollments", json!({"mode": "create", "enrollments": items}));
        assert_eq!(r["isSuccessful"], true, "{r}");
    }
    let mut seen = Vec::new();
    let mut continuation: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut headers = vec![("x-ms-max-item-count", "10")];
        if let Some(t) = continuation.as_deref() {
            headers.push(("x-ms-continuation", t));
        }
        let (s, body, response) = c.send(
            "POST",
            "/enrollments/query",
            Some(json!({"query": "SELECT * FROM enrollments"})),
            &headers,
        );
        assert_eq!(s, 200, "{body}");
        pages += 1;
        let items = body.as_array().unwrap();
        assert!(items.len() <= 10);
        assert_eq!(response.header("x-ms-item-type"), Some("enrollment"));
        seen.extend(items.iter().map(|e| e["registrationId"].as_str().unwrap().to_string()));
        match response.header("x-ms-continuation") {
            Some(t) => continuation = Some(t.to_string()),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
    let (s, b, _) = c.send(
        "POST",
        "/enrollments/query",
        Some(json!({"query": "SELECT * FROM enrollments"})),
        &[("x-ms-continuation", "%%%")],
    );
    assert_error(s, &b, 400, "x-ms-continuation");
    let (s, b) = c.post(
        "/enrollments/query",
        json!({"query": "SELECT * FROM enrollments WHERE x = 1"}),
    );
    assert_error(s, &b, 400, "not supported");
    let (s, b) = c.post(
        "/enrollmentGroups/query",
        json!({"query": "SELECT * FROM enrollmentGroups"}),
    );
    assert_eq!((s, b), (200, json!([])));
}
