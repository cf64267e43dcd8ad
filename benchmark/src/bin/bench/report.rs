//! The results: `<date>-<host>.json` with every figure, and `<date>-<host>.md` with the targets
//! table and one line per run, which the README and docs/PERFORMANCE.md quote.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hookd_engine::secret::SigningSecret;
use hookd_engine::signing;

use serde_json::{Value, json};

use crate::hookd::connect;
use crate::scenarios::{Bench, Scale};

pub struct Scenario {
    pub name: &'static str,
    pub result: Value,
}

/// Writes both files; returns their paths.
pub async fn write(
    out: &Path,
    bench: &Bench,
    scenarios: &[Scenario],
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out)?;
    let machine = machine(bench).await?;
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let host = machine["host"].as_str().unwrap_or("host").to_owned();
    let quick = bench.scale == Scale::Quick;
    let stem = format!("{date}-{host}{}", if quick { "-quick" } else { "" });
    let results: serde_json::Map<String, Value> = scenarios
        .iter()
        .map(|s| (s.name.to_owned(), s.result.clone()))
        .collect();
    let document = json!({"date": date, "quick": quick, "machine": machine, "scenarios": results});
    let json_path = out.join(format!("{stem}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(&document)? + "\n")?;
    let md_path = out.join(format!("{stem}.md"));
    std::fs::write(&md_path, markdown(&document))?;
    Ok(vec![json_path, md_path])
}

async fn machine(bench: &Bench) -> anyhow::Result<Value> {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let host = read("/proc/sys/kernel/hostname").trim().to_owned();
    let admin = connect(&bench.admin_url).await?;
    let mut postgres = serde_json::Map::new();
    for setting in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "full_page_writes",
        "shared_buffers",
        "max_wal_size",
    ] {
        let row = admin.query_one(&format!("SHOW {setting}"), &[]).await?;
        postgres.insert(setting.into(), Value::String(row.get(0)));
    }
    let reference = reference(&admin).await?;
    Ok(json!({
        "host": if host.is_empty() { "host".into() } else { host },
        "cpu": cpu,
        "reference": reference,
        "cores": std::thread::available_parallelism().map_or(0, usize::from),
        "memory_gib": (memory_gib * 10.0).round() / 10.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "postgres": postgres,
    }))
}

/// Fixed work timed on this host after the scenarios, so that runs on hosts of the same shape
/// but not the same speed can be told apart (the model name alone did not say how much slower
/// one host was): hookd's own signing (HMAC-SHA256 and base64 of 16 MiB, one core) and
/// PostgreSQL's executor summing a million integers. Best of three each: the fastest run is
/// the one least disturbed by the rest of the machine.
async fn reference(admin: &tokio_postgres::Client) -> anyhow::Result<Value> {
    let body = vec![0x5a_u8; 16 << 20];
    let secret = SigningSecret::generate();
    let mut signing = Duration::MAX;
    let mut postgres = Duration::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        std::hint::black_box(signing::sign(&secret, "msg_reference", 0, &body));
        signing = signing.min(started.elapsed());
        let started = Instant::now();
        admin
            .query_one("SELECT sum(x) FROM generate_series(1, 1000000) x", &[])
            .await?;
        postgres = postgres.min(started.elapsed());
    }
    Ok(json!({
        "signing_mib_per_s": (16.0 / signing.as_secs_f64()).round(),
        "postgres_sum_1m_ms": (postgres.as_secs_f64() * 10_000.0).round() / 10.0,
    }))
}

fn num(value: &Value) -> Option<f64> {
    value.as_f64()
}

fn fmt(value: Option<f64>, unit: &str) -> String {
    match value {
        None => "not measured".into(),
        // One decimal, so that 79.8 % against a target of 80 % does not read as met.
        Some(v) if unit == "%" => format!("{:.1} %", v * 100.0),
        Some(v) if v >= 100.0 => format!("{} {unit}", thousands(v.round() as u64)),
        Some(v) if v >= 1.0 || v == 0.0 => format!("{v:.1} {unit}"),
        // Two significant digits below one: a statement's share of a millisecond per event
        // would otherwise read "0.0 ms".
        Some(v) => {
            let decimals = (1 - v.log10().floor() as i32).max(1) as usize;
            format!("{v:.decimals$} {unit}")
        }
    }
    .trim_end()
    .to_owned()
}

pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The run of `scenario` whose form starts with `form`.
fn run<'a>(doc: &'a Value, scenario: &str, form: &str) -> &'a Value {
    doc["scenarios"][scenario]["runs"]
        .as_array()
        .and_then(|runs| {
            runs.iter()
                .find(|r| r["form"].as_str().is_some_and(|f| f.starts_with(form)))
        })
        .unwrap_or(&Value::Null)
}

fn markdown(doc: &Value) -> String {
    let m = &doc["machine"];
    let mut md = String::new();
    let _ = writeln!(
        md,
        "hookd-bench{} on {}: {} cores ({}), {} GiB, PostgreSQL {} on the same machine \
         (fsync={}, synchronous_commit={}, full_page_writes={}), {}. The host's speed (fixed \
         work, best of three): hookd's signing at {} on one core, PostgreSQL summing a \
         million integers in {}.\n",
        if doc["quick"] == true {
            " --quick (a smoke run: these figures mean nothing)"
        } else {
            ""
        },
        doc["date"].as_str().unwrap_or(""),
        m["cores"],
        m["cpu"].as_str().unwrap_or(""),
        m["memory_gib"],
        m["postgres"]["server_version"].as_str().unwrap_or(""),
        m["postgres"]["fsync"].as_str().unwrap_or(""),
        m["postgres"]["synchronous_commit"].as_str().unwrap_or(""),
        m["postgres"]["full_page_writes"].as_str().unwrap_or(""),
        m["kernel"]
            .as_str()
            .map_or(String::new(), |k| format!("Linux {k}")),
        fmt(num(&m["reference"]["signing_mib_per_s"]), "MiB/s"),
        fmt(num(&m["reference"]["postgres_sum_1m_ms"]), "ms"),
    );
    let e2e_runs = doc["scenarios"]["end_to_end"]["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let peak_rss = e2e_runs
        .iter()
        .filter_map(|r| num(&r["resources"]["hookd_peak_rss_mib"]))
        .reduce(f64::max);
    let batch_rate = ["batch of 100", "batch of 1000"]
        .iter()
        .filter_map(|f| num(&run(doc, "ingest", f)["result"]["events_per_s"]))
        .reduce(f64::max);
    let fastest = run(doc, "end_to_end", "as fast as possible");
    let at_1000 = &run(doc, "end_to_end", "1000/s")["delivery"]["publish_to_arrival"];
    let at_5000 = &run(doc, "end_to_end", "5000/s")["delivery"]["publish_to_arrival"];
    let rows: Vec<(&str, &str, String)> = vec![
        (
            "ingest, single-event requests, concurrency 64",
            "≥ 5,000 events/s",
            fmt(
                num(&run(doc, "ingest", "single, concurrency 64")["result"]["events_per_s"]),
                "events/s",
            ),
        ),
        (
            "ingest ack p99 at 2,000/s offered",
            "≤ 20 ms",
            fmt(
                num(&run(doc, "ingest", "single, 2,000/s")["result"]["ack"]["p99_ms"]),
                "ms",
            ),
        ),
        (
            "ingest, batch requests",
            "≥ 20,000 events/s",
            fmt(batch_rate, "events/s"),
        ),
        (
            "end to end, sustained, while ingesting",
            "≥ 5,000 deliveries/s",
            fmt(
                num(&fastest["deliveries_per_s_while_ingesting"]),
                "deliveries/s",
            ),
        ),
        (
            "publish-to-arrival at 1,000/s, p50 / p99",
            "≤ 5 ms / ≤ 25 ms",
            format!(
                "{} / {}",
                fmt(num(&at_1000["p50_ms"]), "ms"),
                fmt(num(&at_1000["p99_ms"]), "ms")
            ),
        ),
        (
            "publish-to-arrival at 5,000/s, p99",
            "≤ 100 ms",
            fmt(num(&at_5000["p99_ms"]), "ms"),
        ),
        (
            "NOTIFY vs 1 s polling, p50 latency",
            "≥ 100× lower",
            fmt(
                num(&doc["scenarios"]["wake_up"]["p50_ratio_poll_1s_to_notify"]),
                "×",
            ),
        ),
        (
            "backlog drain rate vs a small queue's",
            "≥ 80 %",
            fmt(
                num(&doc["scenarios"]["backlog"]["large_to_small_rate"]),
                "%",
            ),
        ),
        (
            "claim statement p99 while draining the large backlog",
            "≤ 5 ms",
            fmt(
                num(&doc["scenarios"]["backlog"]["large"]["claim"]["p99_ms"]),
                "ms",
            ),
        ),
        (
            "long reader open: throughput loss",
            "≤ 30 %",
            fmt(
                num(&doc["scenarios"]["long_reader"]["throughput_loss"]),
                "%",
            ),
        ),
        (
            "hookd peak RSS in scenario 2",
            "≤ 150 MiB",
            fmt(peak_rss, "MiB"),
        ),
    ];
    md.push_str("| figure | target | measured |\n| --- | --- | ---: |\n");
    for (figure, target, measured) in rows {
        let _ = writeln!(md, "| {figure} | {target} | {measured} |");
    }
    md.push_str(
        "\n| scenario | run | rate | p50 | p95 | p99 | max | hookd RSS / CPU | PostgreSQL PSS / CPU |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (name, scenario) in doc["scenarios"].as_object().into_iter().flatten() {
        for (form, figures) in lines(scenario) {
            let _ = writeln!(md, "| {name} | {form} | {figures} |");
        }
    }
    let profiled = ["ingest", "end_to_end", "wake_up"]
        .into_iter()
        .flat_map(|scenario| {
            doc["scenarios"][scenario]["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| !r["statements"].is_null())
                .map(move |r| (scenario, r))
        });
    for (scenario, run) in profiled {
        let profile = &run["statements"];
        let (what, per) = match scenario {
            "ingest" => ("ingest run of", "published"),
            "wake_up" => ("wake-up run woken by", "delivered"),
            _ => ("end-to-end run at", "delivered"),
        };
        let _ = writeln!(
            md,
            "\nWhere PostgreSQL's time went in the {what} {} (pg_stat_statements: planning and \
             execution, wall clock summed over connections, {} per {per} event in all):\n\n\
             | statement | calls | plan ms / call | exec ms / call | ms / {per} event | share |\n\
             | --- | ---: | ---: | ---: | ---: | ---: |",
            run["form"].as_str().unwrap_or(""),
            fmt(num(&profile["total_ms_per_delivery"]), "ms"),
        );
        for statement in profile["statements"].as_array().into_iter().flatten() {
            let _ = writeln!(
                md,
                "| `{}` | {} | {:.3} | {:.3} | {:.3} | {:.0} % |",
                statement["statement"]
                    .as_str()
                    .unwrap_or("")
                    .replace('|', "\\|"),
                thousands(num(&statement["calls"]).unwrap_or(0.0) as u64),
                num(&statement["plan_ms_per_call"]).unwrap_or(0.0),
                num(&statement["exec_ms_per_call"]).unwrap_or(0.0),
                num(&statement["ms_per_delivery"]).unwrap_or(0.0),
                num(&statement["share"]).unwrap_or(0.0) * 100.0,
            );
        }
        let tables = profile["tables"].as_array().into_iter().flatten();
        let _ = writeln!(
            md,
            "\nRow changes per {per} event in that run (an update is HOT when it writes no \
             index entry):\n\n\
             | table | inserts | updates | of which HOT | deletes |\n\
             | --- | ---: | ---: | ---: | ---: |"
        );
        for table in tables {
            let _ = writeln!(
                md,
                "| `{}` | {:.2} | {:.2} | {:.2} | {:.2} |",
                table["table"].as_str().unwrap_or(""),
                num(&table["inserts_per_delivery"]).unwrap_or(0.0),
                num(&table["updates_per_delivery"]).unwrap_or(0.0),
                num(&table["hot_updates_per_delivery"]).unwrap_or(0.0),
                num(&table["deletes_per_delivery"]).unwrap_or(0.0),
            );
        }
    }
    let large = &doc["scenarios"]["backlog"]["large"];
    for (key, what) in [
        (
            "claim",
            "The claim statement (64 deliveries), in the generic plan workers reuse (its \
             planning time is the one-off building of that plan),",
        ),
        (
            "claim_floored",
            "The next claim (64 more), from the floor the first one left (ARCHITECTURE.md), as \
             workers run all but one claim in every few seconds,",
        ),
        (
            "record_outcomes",
            "The outcome statement (the first 64 recorded as delivered)",
        ),
    ] {
        if let Some(plan) = large["plans"][key].as_array() {
            let _ = writeln!(
                md,
                "\n{what} at the head of {} due deliveries, `EXPLAIN (ANALYZE, BUFFERS)`:\n\n```",
                thousands(num(&large["loaded"]).unwrap_or(0.0) as u64)
            );
            for line in plan.iter().filter_map(Value::as_str) {
                let _ = writeln!(md, "{line}");
            }
            md.push_str("```\n");
        }
    }
    md
}

/// One table line per run: its rate, latency and resources, whichever it has.
fn lines(scenario: &Value) -> Vec<(String, String)> {
    let mut runs: Vec<(String, &Value)> = Vec::new();
    if let Some(list) = scenario["runs"].as_array() {
        for r in list {
            runs.push((r["form"].as_str().unwrap_or("").to_owned(), r));
        }
    }
    for part in ["small", "large"] {
        if !scenario[part].is_null() {
            let form = format!(
                "drain {} deliveries",
                thousands(num(&scenario[part]["loaded"]).unwrap_or(0.0) as u64)
            );
            runs.push((form, &scenario[part]));
        }
    }
    if !scenario["endpoints"].is_null() {
        runs.push((
            format!(
                "{} events × {} endpoints",
                scenario["events"], scenario["endpoints"]
            ),
            scenario,
        ));
    }
    runs.into_iter()
        .map(|(form, r)| {
            let delivery = [&r["delivery"], &r["healthy_delivery"]]
                .into_iter()
                .find(|d| !d.is_null());
            let (rate, latency) = if let Some(d) = delivery {
                (
                    num(&r["deliveries_per_s"])
                        .or_else(|| num(&d["deliveries_per_s"]))
                        .map(|v| fmt(Some(v), "deliveries/s")),
                    Some(&d["publish_to_arrival"]),
                )
            } else if !r["result"].is_null() {
                (
                    num(&r["result"]["events_per_s"]).map(|v| fmt(Some(v), "events/s")),
                    Some(&r["result"]["ack"]),
                )
            } else {
                (
                    num(&r["drain_deliveries_per_s"]).map(|v| fmt(Some(v), "deliveries/s")),
                    None,
                )
            };
            let ms = |key: &str| latency.map_or("".into(), |l| fmt(num(&l[key]), "ms"));
            let resources = &r["resources"];
            let usage = |mem: &str, cpu: &str| {
                num(&resources[mem]).map_or(String::new(), |m| {
                    format!(
                        "{m:.0} MiB / {:.2} cores",
                        num(&resources[cpu]).unwrap_or(0.0)
                    )
                })
            };
            (
                form,
                format!(
                    "{} | {} | {} | {} | {} | {} | {}",
                    rate.unwrap_or_default(),
                    ms("p50_ms"),
                    ms("p95_ms"),
                    ms("p99_ms"),
                    ms("max_ms"),
                    usage("hookd_peak_rss_mib", "hookd_cores"),
                    usage("postgres_peak_pss_mib", "postgres_cores"),
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::fmt;

    #[test]
    fn figures_keep_the_digits_a_target_needs() {
        assert_eq!(fmt(Some(0.0412), "ms"), "0.041 ms");
        assert_eq!(fmt(Some(0.41), "ms"), "0.41 ms");
        assert_eq!(fmt(Some(2.34), "ms"), "2.3 ms");
        assert_eq!(fmt(Some(0.0), "ms"), "0.0 ms");
        assert_eq!(fmt(Some(12_291.4), "events/s"), "12,291 events/s");
        assert_eq!(fmt(Some(0.798), "%"), "79.8 %");
        assert_eq!(fmt(None, "ms"), "not measured");
    }
}
