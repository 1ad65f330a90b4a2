//! Go captures checked against their Go types: generic functions, whose dictionary comes
//! before their parameters; a struct passed by value, read by its fields in their registers
//! (a `string` field with its length); an interface by its data word; and what no type reads
//! (text where Go keeps none, a struct or an interface as a whole) refused with the reason.

mod support;

use std::path::{Path, PathBuf};

use serde_json::json;
use support::{
    go_build,
    receiver::ReceivedSpan,
    scenario::{Scenario, Workdir, assert_has_all, named},
};

/// `tests/programs/gotypes`, built into `dir`.
fn gotypes(dir: &Path) -> PathBuf {
    go_build(dir, "gotypes", "gotypes")
}

/// The one span named `name` among `spans`.
fn one<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let [span] = named(spans, name)[..] else {
        panic!("one {name} in {spans:#?}")
    };
    span
}

/// A generic function of two type parameters, instantiated for two shapes, and a method of a
/// generic type: each parameter is read where its declared position puts it, after the
/// dictionary in RAX.
#[tokio::test(flavor = "multi_thread")]
async fn generic_functions_are_read_after_their_dictionary() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = gotypes(s.path());
    let (str_arg, int_arg) = (
        |index, name| json!({ "index": index, "name": name, "type": "str" }),
        |index, name| json!({ "index": index, "name": name, "type": "i64" }),
    );
    // `?` stands for the brackets, which a glob reads as a class.
    let functions = json!([
        { "symbol": "main.Pair?go.shape.string_0,go.shape.int_1?",
          "args": [str_arg(0, "k"), int_arg(1, "v"), int_arg(2, "n")] },
        { "symbol": "main.Pair?go.shape.int_0,go.shape.string_1?",
          "args": [int_arg(0, "k"), str_arg(1, "v"), int_arg(2, "n")] },
        { "symbol": "main.(?Stack?go.shape.string_0?).Push",
          "args": [str_arg(1, "v"), int_arg(2, "n")] },
    ]);
    let config = s.config(&binary, functions);
    assert_has_all(
        &s.check(&config, 0).await,
        &[
            "args k: str up to 64 bytes counted by RCX (RBX), v: i64 (RDI), n: i64 (RSI)",
            "args k: i64 (RBX), v: str up to 64 bytes counted by RDI (RCX), n: i64 (RSI)",
            "args v: str up to 64 bytes counted by RDI (RCX), n: i64 (RSI)",
        ],
    );
    let (output, spans) = s.trace(&config, &[binary.to_str().unwrap()]).exits(0).await;
    assert_eq!(support::stdout(&output), "4 5 10 12 16 20 20 5\n");
    let read = |name| {
        let span = one(&spans, name);
        let text = |key| span.str_attr(key).map(str::to_owned);
        (
            text("k"),
            span.int_attr("k"),
            text("v"),
            span.int_attr("v"),
            span.int_attr("n"),
        )
    };
    assert_eq!(
        read("main.Pair[go.shape.string_0,go.shape.int_1]"),
        (Some("key".into()), None, None, Some(42), Some(3))
    );
    assert_eq!(
        read("main.Pair[go.shape.int_0,go.shape.string_1]"),
        (None, Some(7), Some("seven".into()), None, Some(4))
    );
    assert_eq!(
        read("main.(*Stack[go.shape.string_0]).Push"),
        (None, None, Some("top".into()), None, Some(9))
    );
}

/// A struct passed by value is read by its fields, each in its registers: a `string` with its
/// length (its neighbours in the binary follow it with no NUL), a `[]byte` counted by its
/// length; an interface by its data word, followed to its value's field.
#[tokio::test(flavor = "multi_thread")]
async fn struct_fields_by_value_and_interfaces_by_their_data() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = gotypes(s.path());
    let functions = json!([
        { "symbol": "main.store", "args": [
            { "index": 0, "name": "it.Name", "path": ".Name" },
            { "index": 0, "name": "it.Count", "path": ".Count" },
            { "index": 0, "name": "it.Tags", "path": ".Tags" },
            { "index": 1, "name": "tag", "type": "str" },
        ] },
        { "symbol": "main.describe", "args": [
            { "index": 0, "name": "v.id", "type": "i64", "offsets": [0] },
            { "index": 1, "name": "n", "type": "i64" },
        ] },
        { "symbol": "main.(*shop).open", "args": [
            { "index": 1, "name": "code", "type": "str" },
            { "index": 2, "name": "raw", "type": "bytes", "len": 16 },
            { "index": 3, "name": "second", "type": "i64", "offsets": [8] },
        ] },
    ]);
    let config = s.config(&binary, functions);
    assert_has_all(
        &s.check(&config, 0).await,
        &[
            "args it.Name: str up to 64 bytes counted by RBX (RAX), it.Count: i64 (RCX), \
             it.Tags: bytes up to 64 bytes counted by RSI (RDI), tag: str up to 64 bytes counted by \
             R10 (R9)",
            "args v.id: i64 at offsets [0] from RBX, n: i64 (RCX)",
        ],
    );
    let (_, spans) = s.trace(&config, &[binary.to_str().unwrap()]).exits(0).await;
    let store = one(&spans, "main.store");
    assert_eq!(store.str_attr("it.Name"), Some("widget"));
    assert_eq!(store.int_attr("it.Count"), Some(3));
    assert_eq!(store.str_attr("it.Tags"), Some("6162"));
    assert_eq!(store.str_attr("tag"), Some("t"));
    let describe = one(&spans, "main.describe");
    assert_eq!(describe.int_attr("v.id"), Some(11));
    assert_eq!(describe.int_attr("n"), Some(5));
    let open = one(&spans, "main.(*shop).open");
    assert_eq!(open.str_attr("code"), Some("dawn"));
    assert_eq!(open.str_attr("raw"), Some("010203"));
    assert_eq!(open.int_attr("second"), Some(5));
}

/// Values behind pointers, by `path` resolved from Go's DWARF: through a pointer parameter,
/// through a pointer field of a struct passed by value (`.to->name`), into a slice's elements;
/// a `string` and a `[]byte` read by the length beside their pointer (the fixture's strings
/// have no NUL between them), and a result followed the same way.
#[tokio::test(flavor = "multi_thread")]
async fn values_behind_pointers_by_path() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = gotypes(s.path());
    let by_path = |name, path| json!({ "index": 0, "name": name, "path": path });
    let functions = json!([
        { "symbol": "main.(*order).ship", "args": [
            by_path("buyer", "->buyer->name"),
            by_path("note", "->note"),
            by_path("second", "->lines[1].Name"),
            by_path("second.count", "->lines[1].Count"),
            by_path("raw", "->raw"),
            by_path("tier", "->buyer->tier"),
            { "index": 1, "name": "express", "type": "bool" },
        ] },
        { "symbol": "main.deliver",
          "args": [by_path("to", ".to->name"), by_path("weight", ".weight")],
          "return": { "name": "tier", "path": "->tier" } },
    ]);
    let config = s.config(&binary, functions);
    assert_has_all(
        &s.check(&config, 0).await,
        &[
            "buyer: str up to 64 bytes counted by the length beside its pointer at \
             ->buyer->name (offsets [8, 0] from RAX)",
            "second.count: i64 at ->lines[1].Count (offsets [32, 64] from RAX)",
            "to: str up to 64 bytes counted by the length beside its pointer at .to->name \
             (offsets [0] from RAX), weight: i64 (RBX)",
            "return tier: i64 at ->tier (offsets [16] from RAX)",
        ],
    );
    let (output, spans) = s.trace(&config, &[binary.to_str().unwrap()]).exits(0).await;
    assert_eq!(support::stdout(&output), "4 5 10 12 16 20 20 5\n");
    let ship = one(&spans, "main.(*order).ship");
    assert_eq!(ship.str_attr("buyer"), Some("ada"));
    assert_eq!(ship.str_attr("note"), Some("fragile"));
    assert_eq!(ship.str_attr("second"), Some("nut"));
    assert_eq!(ship.int_attr("second.count"), Some(4));
    assert_eq!(ship.str_attr("raw"), Some("cafe"));
    assert_eq!(ship.int_attr("tier"), Some(2));
    assert_eq!(ship.bool_attr("express"), Some(true));
    let deliver = one(&spans, "main.deliver");
    assert_eq!(deliver.str_attr("to"), Some("ada"));
    assert_eq!(deliver.int_attr("weight"), Some(3));
    assert_eq!(deliver.int_attr("tier"), Some(5));
}

/// What no type reads is refused with the reason, by `check`.
#[tokio::test]
async fn captures_their_go_type_does_not_allow_are_refused() {
    let dir = Workdir::new();
    let binary = gotypes(dir.path());
    let functions = json!([
        { "symbol": "main.store", "args": [
            { "index": 0, "name": "it", "type": "str" },
            { "index": 0, "name": "it", "type": "ptr" },
            { "index": 0, "name": "size", "path": ".Size" },
            { "index": 1, "name": "tag", "path": ".Len" },
        ] },
        { "symbol": "main.describe", "args": [{ "index": 0, "name": "v", "type": "str" }] },
        { "symbol": "main.(*shop).open", "args": [
            { "index": 0, "name": "s", "type": "str" },
            { "index": 0, "name": "name", "path": "->nothing" },
            { "index": 3, "name": "ids", "type": "bytes", "len": 8 },
            { "index": 0, "name": "id", "path": "->id", "type": "str" },
            { "index": 1, "name": "code", "path": "->x" },
        ] },
        { "symbol": "main.deliver", "return": { "name": "to", "path": "->name" } },
    ]);
    let config = json!({ "probes": [support::scenario::probe(&binary, functions)] });
    let struct_whole = "main.store: `it` is a Go struct (main.item) passed by value, in RAX, RBX, \
                        RCX, RDI, RSI, R8: no type reads it whole (nor is it an address); read \
                        its fields by `path`: `.Name`, `.Count`, `.Tags`";
    assert_has_all(
        &dir.check(&config, 2).await,
        &[
            &format!("functions[0].args[0]: {struct_whole}"),
            &format!("functions[0].args[1]: {struct_whole}"),
            "functions[0].args[2]: main.store: `.Size`: main.item has no field `Size`; it has \
             `Name`, `Count`, `Tags`",
            "functions[0].args[3]: main.store: `.Len`: `tag` is a Go string, not a struct \
             passed by value",
            "functions[1].args[0]: main.describe: `v` is a Go interface (interface {}): its \
             words are its dynamic type and its data, a pointer to the value (or the pointer it \
             holds): read the data word as `ptr`, or what it points to with `offsets`",
            "functions[2].args[0]: main.(*shop).open: `s` is a Go pointer (*main.shop), not text \
             (Go strings are not NUL-terminated): read it as `ptr`, or what it points to by \
             `path` (`->Name`)",
            &format!(
                "functions[2].args[1].path: {b}: cannot resolve `->nothing`: `->nothing`: \
                 main.shop has no member `nothing`; it has id, name",
                b = binary.display()
            ),
            "functions[2].args[2]: main.(*shop).open: `ids` is a Go []int of 3 words: read it as \
             `ptr` (its array), or an element by `path` (`[0]` is the first); its length counts \
             elements, not the bytes `str` or `bytes` would read",
            &format!(
                "functions[2].args[3].path: {b}: cannot resolve `->id`: the value is int, which \
                 Go keeps no text in (its strings are not NUL-terminated): read a `string` or a \
                 `[]byte`, or this as `ptr`, or as `bytes` with a `len`",
                b = binary.display()
            ),
            &format!(
                "functions[2].args[4].path: {b}: cannot resolve `->x`: `->x`: string is not a \
                 pointer",
                b = binary.display()
            ),
            &format!(
                "functions[3].return.path: {b}: cannot resolve `->name`: the value is string, \
                 read as `str`: a return value is captured as a number, not the memory behind it",
                b = binary.display()
            ),
        ],
    );
}

/// Go's own net/http, which no one here wrote: each request's method, path, host, protocol,
/// body length and peer, read from the `*http.Request` that `(*ServeMux).ServeHTTP` is
/// handed (its third parameter, after the receiver and the `ResponseWriter` interface), as
/// curl sent them.
#[tokio::test(flavor = "multi_thread")]
async fn net_http_requests_by_path() {
    support::needs_root!();
    let s = Scenario::start().await;
    let binary = go_build(s.path(), "gohttp", "gohttp");
    let request = |name, path| json!({ "index": 2, "name": name, "path": path });
    let functions = json!([{ "symbol": "net/http.(*ServeMux).ServeHTTP", "args": [
        request("http.request.method", "->Method"),
        request("url.path", "->URL->Path"),
        request("url.query", "->URL->RawQuery"),
        request("server.address", "->Host"),
        request("network.protocol.name", "->Proto"),
        request("http.request.body.size", "->ContentLength"),
        request("client.address", "->RemoteAddr"),
    ] }]);
    let port = support::free_port();
    // curl retries until the server listens; the server exits once it has answered /quit.
    let script = format!(
        "{server} 127.0.0.1:{port} & \
         for i in $(seq 100); do \
           curl -s 'http://127.0.0.1:{port}/hello?lang=go' && break; sleep 0.1; \
         done; \
         curl -s -d 'twelve bytes' http://127.0.0.1:{port}/quit; wait",
        server = binary.display()
    );
    let (output, spans) = s
        .trace(&s.config(&binary, functions), &["sh", "-c", &script])
        .exits(0)
        .await;
    // The server's and curl's stderr come through spanprobe's.
    assert_eq!(
        support::stdout(&output),
        "hello\nbye\n",
        "{}",
        support::stderr(&output)
    );
    let served = named(&spans, "net/http.(*ServeMux).ServeHTTP");
    let mut requests: Vec<_> = served
        .iter()
        .map(|span| {
            let text = |key| span.str_attr(key).map(str::to_owned);
            (
                text("http.request.method"),
                text("url.path"),
                text("url.query"),
                text("server.address"),
                text("network.protocol.name"),
                span.int_attr("http.request.body.size"),
            )
        })
        .collect();
    requests.sort();
    let host = format!("127.0.0.1:{port}");
    let request = |method: &str, path: &str, query: &str, size| {
        (
            Some(method.to_owned()),
            Some(path.to_owned()),
            Some(query.to_owned()),
            Some(host.clone()),
            Some("HTTP/1.1".to_owned()),
            Some(size),
        )
    };
    // The first curl may have found no server yet: only answered requests reach a handler.
    assert_eq!(
        requests,
        [
            request("GET", "/hello", "lang=go", 0),
            request("POST", "/quit", "", 12),
        ]
    );
    for span in served {
        let peer = span.str_attr("client.address").unwrap_or_default();
        assert!(peer.starts_with("127.0.0.1:"), "{span:#?}");
    }
}
