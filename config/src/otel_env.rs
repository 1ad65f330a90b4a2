//! The standard OpenTelemetry environment variables, which take precedence over the file.

use std::time::Duration;

use crate::{
    Compression, Config, ExporterConfig, Located, OtlpConfig, OtlpProtocol, Position, Problem,
    Sampler,
};

pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub const OTEL_EXPORTER_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
pub const OTEL_EXPORTER_OTLP_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
pub const OTEL_EXPORTER_OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
pub const OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
pub const OTEL_EXPORTER_OTLP_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
pub const OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";

/// Applies the OTel variables `lookup` finds. An endpoint variable turns the stdout exporter
/// into OTLP, since setting one asks for OTLP export.
pub(crate) fn apply(config: &mut Config, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

    if let Some(attributes) = get(OTEL_RESOURCE_ATTRIBUTES) {
        match parse_pairs(&attributes) {
            Ok(pairs) => {
                for (key, value) in pairs {
                    if key == "service.name" {
                        config.service_name = Some(value);
                    } else {
                        config.resource.insert(key, value);
                    }
                }
            }
            Err(message) => problems.push(env_problem(OTEL_RESOURCE_ATTRIBUTES, message)),
        }
    }
    if let Some(name) = get(OTEL_SERVICE_NAME) {
        config.service_name = Some(name);
    }
    if let Some(name) = get(OTEL_TRACES_SAMPLER) {
        match parse_sampler(&name, get(OTEL_TRACES_SAMPLER_ARG).as_deref()) {
            Ok(sampler) => config.sampler = sampler,
            Err((variable, message)) => problems.push(env_problem(variable, message)),
        }
    }

    let endpoint = get(OTEL_EXPORTER_OTLP_ENDPOINT);
    let traces_endpoint = get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
    if (endpoint.is_some() || traces_endpoint.is_some())
        && let ExporterConfig::Stdout(_) = config.exporter
    {
        config.exporter = ExporterConfig::Otlp(OtlpConfig::default());
    }
    let ExporterConfig::Otlp(otlp) = &mut config.exporter else {
        return problems;
    };
    if let Some(endpoint) = endpoint {
        otlp.endpoint = Some(Located::unplaced(endpoint));
        otlp.endpoint_variable = Some(OTEL_EXPORTER_OTLP_ENDPOINT);
    }
    if let Some(endpoint) = traces_endpoint {
        otlp.traces_endpoint = Some(endpoint);
    }
    let protocol = signal_setting(
        &get,
        [
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
            OTEL_EXPORTER_OTLP_PROTOCOL,
        ],
        parse_protocol,
        &mut problems,
    );
    if let Some(protocol) = protocol {
        otlp.protocol = protocol;
    }
    let timeout = signal_setting(
        &get,
        [
            OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
            OTEL_EXPORTER_OTLP_TIMEOUT,
        ],
        parse_millis,
        &mut problems,
    );
    if let Some(timeout) = timeout {
        otlp.timeout = Some(timeout);
    }
    let compression = signal_setting(
        &get,
        [
            OTEL_EXPORTER_OTLP_TRACES_COMPRESSION,
            OTEL_EXPORTER_OTLP_COMPRESSION,
        ],
        parse_compression,
        &mut problems,
    );
    if let Some(compression) = compression {
        otlp.compression = compression;
    }
    // Both apply, the traces headers last: a name in both takes the traces value.
    for variable in [
        OTEL_EXPORTER_OTLP_HEADERS,
        OTEL_EXPORTER_OTLP_TRACES_HEADERS,
    ] {
        if let Some(headers) = get(variable) {
            match parse_pairs(&headers) {
                Ok(pairs) => otlp.headers.extend(pairs),
                Err(message) => problems.push(env_problem(variable, message)),
            }
        }
    }
    problems
}

/// `OTEL_TRACES_SAMPLER` and its argument, for the samplers that make sense for spans whose
/// trace may come from the traced program: the spec's built-in ones.
fn parse_sampler(name: &str, arg: Option<&str>) -> Result<Sampler, (&'static str, String)> {
    let ratio = || match arg {
        None => Ok(1.0),
        Some(text) => match text.trim().parse::<f64>() {
            Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
            _ => Err((
                OTEL_TRACES_SAMPLER_ARG,
                format!("`{text}` is not a ratio between 0 and 1"),
            )),
        },
    };
    let (root_ratio, parent_based) = match name.trim() {
        "always_on" => (1.0, false),
        "always_off" => (0.0, false),
        "traceidratio" => (ratio()?, false),
        "parentbased_always_on" => (1.0, true),
        "parentbased_always_off" => (0.0, true),
        "parentbased_traceidratio" => (ratio()?, true),
        other => {
            return Err((
                OTEL_TRACES_SAMPLER,
                format!(
                    "`{other}` is not supported; expected one of always_on, always_off, \
                     traceidratio, parentbased_always_on, parentbased_always_off, \
                     parentbased_traceidratio"
                ),
            ));
        }
    };
    Ok(Sampler {
        root_ratio,
        parent_based,
    })
}

/// The first of `variables` that is set (the traces one wins over the general one, as the
/// spec says), parsed; a value that does not parse is a problem naming its variable.
fn signal_setting<T>(
    get: &dyn Fn(&str) -> Option<String>,
    variables: [&'static str; 2],
    parse: fn(&str) -> Result<T, String>,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let (variable, value) = variables
        .into_iter()
        .find_map(|variable| get(variable).map(|value| (variable, value)))?;
    parse(value.trim())
        .map_err(|message| problems.push(env_problem(variable, message)))
        .ok()
}

fn parse_protocol(value: &str) -> Result<OtlpProtocol, String> {
    match value {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        other => Err(format!(
            "`{other}` is not supported; use `grpc` or `http/protobuf`"
        )),
    }
}

fn parse_millis(value: &str) -> Result<Duration, String> {
    value
        .parse()
        .map(Duration::from_millis)
        .map_err(|_| format!("`{value}` is not a number of milliseconds"))
}

fn parse_compression(value: &str) -> Result<Compression, String> {
    match value {
        "gzip" => Ok(Compression::Gzip),
        "none" => Ok(Compression::None),
        other => Err(format!("`{other}` is not supported; use `gzip` or `none`")),
    }
}

fn env_problem(variable: &str, message: String) -> Problem {
    Problem::new(Position::default(), format!("${variable}"), message)
}

/// `key1=value1,key2=value2`, values percent-decoded, as the OTel spec defines for
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`.
fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{}` is not a key=value pair", pair.trim()))?;
            Ok((key.trim().to_owned(), percent_decode(value.trim())?))
        })
        .collect()
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding in `{text}`"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{text}` is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::StdoutConfig;

    fn config() -> Config {
        Config {
            service_name: Some("from-file".into()),
            resource: [("team".to_owned(), "a".to_owned())].into(),
            exporter: ExporterConfig::Stdout(StdoutConfig::default()),
            batch: Default::default(),
            limits: Default::default(),
            metrics_listen: None,
            probes: vec![],
            base_dir: Default::default(),
            sampler: Sampler::default(),
        }
    }

    #[test]
    fn samplers_as_the_spec_names_them() {
        let sampler = |vars: &[(&str, &str)]| {
            let mut c = config();
            let problems = apply_env(&mut c, vars);
            (c.sampler, problems)
        };
        assert_eq!(sampler(&[]), (Sampler::default(), vec![]));
        let ratio = |ratio, parent_based| Sampler {
            root_ratio: ratio,
            parent_based,
        };
        for (name, arg, expected) in [
            ("always_on", None, ratio(1.0, false)),
            ("always_off", None, ratio(0.0, false)),
            ("traceidratio", Some("0.25"), ratio(0.25, false)),
            ("traceidratio", None, ratio(1.0, false)),
            ("parentbased_always_off", None, ratio(0.0, true)),
            ("parentbased_traceidratio", Some("0.5"), ratio(0.5, true)),
        ] {
            let mut vars = vec![(OTEL_TRACES_SAMPLER, name)];
            vars.extend(arg.map(|arg| (OTEL_TRACES_SAMPLER_ARG, arg)));
            assert_eq!(sampler(&vars), (expected, vec![]), "{name}");
        }
        let (kept, problems) = sampler(&[(OTEL_TRACES_SAMPLER, "jaeger_remote")]);
        assert_eq!(kept, Sampler::default());
        assert!(
            problems[0]
                .to_string()
                .contains("`jaeger_remote` is not supported")
        );
        let (_, problems) = sampler(&[
            (OTEL_TRACES_SAMPLER, "traceidratio"),
            (OTEL_TRACES_SAMPLER_ARG, "2"),
        ]);
        assert!(
            problems[0]
                .to_string()
                .contains("$OTEL_TRACES_SAMPLER_ARG: `2` is not a ratio"),
            "{problems:?}"
        );
    }

    fn apply_env(config: &mut Config, vars: &[(&str, &str)]) -> Vec<Problem> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        apply(config, &|name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_set_changes_nothing() {
        let mut c = config();
        assert!(apply_env(&mut c, &[]).is_empty());
        assert_eq!(c, config());
    }

    #[test]
    fn service_name_and_resource_attributes() {
        let mut c = config();
        let problems = apply_env(
            &mut c,
            &[
                (
                    OTEL_RESOURCE_ATTRIBUTES,
                    "team=b,deployment.environment=prod%20eu,service.name=r",
                ),
                (OTEL_SERVICE_NAME, "svc"),
            ],
        );
        assert!(problems.is_empty());
        // OTEL_SERVICE_NAME wins over service.name in the attributes.
        assert_eq!(c.service_name.as_deref(), Some("svc"));
        assert_eq!(c.resource.get("team").map(String::as_str), Some("b"));
        assert_eq!(
            c.resource.get("deployment.environment").map(String::as_str),
            Some("prod eu")
        );
    }

    #[test]
    fn endpoint_switches_to_otlp_with_protocol_and_headers() {
        let mut c = config();
        let problems = apply_env(
            &mut c,
            &[
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://collector:4318"),
                (OTEL_EXPORTER_OTLP_PROTOCOL, "http/protobuf"),
                (
                    OTEL_EXPORTER_OTLP_HEADERS,
                    "authorization=Bearer%20x,tenant=t1",
                ),
            ],
        );
        assert!(problems.is_empty());
        let ExporterConfig::Otlp(otlp) = &c.exporter else {
            panic!("not otlp")
        };
        assert_eq!(
            otlp.endpoint.as_ref().map(|e| e.value.as_str()),
            Some("http://collector:4318")
        );
        assert_eq!(otlp.endpoint_variable, Some(OTEL_EXPORTER_OTLP_ENDPOINT));
        assert_eq!(otlp.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(
            otlp.headers.get("authorization").map(String::as_str),
            Some("Bearer x")
        );
        assert_eq!(otlp.headers.get("tenant").map(String::as_str), Some("t1"));
    }

    #[test]
    fn traces_variables_win_over_the_general_ones() {
        let mut c = config();
        let problems = apply_env(
            &mut c,
            &[
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://collector:4317"),
                (OTEL_EXPORTER_OTLP_PROTOCOL, "http/protobuf"),
                (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "grpc"),
                (OTEL_EXPORTER_OTLP_TIMEOUT, "5000"),
                (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, "250"),
                (OTEL_EXPORTER_OTLP_COMPRESSION, "gzip"),
                (OTEL_EXPORTER_OTLP_HEADERS, "tenant=general,team=a"),
                (OTEL_EXPORTER_OTLP_TRACES_HEADERS, "tenant=traces"),
            ],
        );
        assert!(problems.is_empty(), "{problems:?}");
        let ExporterConfig::Otlp(otlp) = &c.exporter else {
            panic!("not otlp")
        };
        assert_eq!(otlp.protocol, OtlpProtocol::Grpc);
        assert_eq!(otlp.timeout, Some(Duration::from_millis(250)));
        assert_eq!(otlp.compression, Compression::Gzip);
        assert_eq!(
            otlp.headers.get("tenant").map(String::as_str),
            Some("traces")
        );
        assert_eq!(otlp.headers.get("team").map(String::as_str), Some("a"));
    }

    #[test]
    fn bad_values_are_problems_naming_the_variable() {
        let mut c = config();
        c.exporter = ExporterConfig::Otlp(OtlpConfig::default());
        let problems = apply_env(
            &mut c,
            &[
                (OTEL_EXPORTER_OTLP_PROTOCOL, "http/json"),
                (OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, "10s"),
                (OTEL_EXPORTER_OTLP_COMPRESSION, "zstd"),
                (OTEL_EXPORTER_OTLP_HEADERS, "novalue"),
            ],
        );
        let text: Vec<_> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "$OTEL_EXPORTER_OTLP_PROTOCOL: `http/json` is not supported; use `grpc` or `http/protobuf`",
                "$OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: `10s` is not a number of milliseconds",
                "$OTEL_EXPORTER_OTLP_COMPRESSION: `zstd` is not supported; use `gzip` or `none`",
                "$OTEL_EXPORTER_OTLP_HEADERS: `novalue` is not a key=value pair",
            ]
        );
    }
}
