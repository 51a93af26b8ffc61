//! `stratus bench api`: the EC2 endpoint under load, signatures checked:
//! DescribeInstances over 10,000 instances (whole list, a 1,000-instance
//! page, one by id), then RunInstances on fake hypervisors until every
//! instance runs.

use std::time::{Duration, Instant};

use clap::Args;
use futures::StreamExt;
use stratus_api::config::Quotas;
use stratus_api::db::images::ImageRow;
use stratus_api::db::instances::{InstanceRow, NewReservation};
use stratus_rpc::wire::conductor::InstanceState;
use stratus_rpc::wire::ids::InstanceId;

use crate::ec2_client::Client;
use crate::fake_cloud::{FakeCloud, Options as CloudOptions};

use super::BenchError;
use super::stats::Figures;

/// Sizes of `stratus bench api`.
#[derive(Debug, Clone, Copy, Args)]
pub struct Options {
    /// Instances DescribeInstances looks over.
    #[arg(long, default_value_t = 10_000)]
    pub instances: usize,
    /// RunInstances requests (one instance each).
    #[arg(long, default_value_t = 500)]
    pub runs: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

super::error::bench_steps!("api");

/// Sends `forms` with `concurrency` in flight; the latencies and the time.
async fn load(
    client: &Client,
    forms: Vec<String>,
    concurrency: usize,
) -> Result<(Figures, usize), BenchError> {
    let started = Instant::now();
    let results: Vec<Result<(Duration, usize), BenchError>> = futures::stream::iter(forms)
        .map(|form| {
            let client = client.clone();
            async move {
                let t = Instant::now();
                let body = client.call(&form).await.map_err(fail("request"))?;
                let len = body.len();
                Ok((t.elapsed(), len))
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut samples = Vec::with_capacity(results.len());
    let mut bytes = 0;
    for r in results {
        let (d, len) = r?;
        samples.push(d);
        bytes = bytes.max(len);
    }
    Ok((Figures::from(samples, elapsed), bytes))
}

fn instance_row(project: &str, reservation: &str, index: i64, now: &str) -> InstanceRow {
    let id = InstanceId::new();
    InstanceRow {
        uuid: id.to_string(),
        ec2_id: id.ec2_id(),
        project_id: project.into(),
        user_id: "bench".into(),
        reservation_id: reservation.into(),
        launch_index: index,
        image_id: IMAGE_ID.into(),
        instance_type: "m1.tiny".into(),
        vcpus: 1,
        memory_mb: 512,
        root_gb: 1,
        availability_zone: Some("nova".into()),
        host: Some("node-000".into()),
        fixed_ip: Some(format!(
            "10.{}.{}.{}",
            200 + index / 65536,
            (index / 256) % 256,
            index % 256
        )),
        state: InstanceState::Running,
        launched_at: now.into(),
        updated_at: now.into(),
        ..InstanceRow::default()
    }
}

/// Runs the benchmark and prints its figures.
pub async fn run(options: Options) -> Result<(), BenchError> {
    let cloud = FakeCloud::start(CloudOptions {
        hosts: 4,
        host_vcpus: 4096,
        host_memory_mb: 64 << 20,
        quotas: Quotas {
            instances: u64::MAX / 2,
            vcpus: u64::MAX / 2,
            memory_mb: u64::MAX / 2,
            ..Quotas::default()
        },
        ..CloudOptions::default()
    })
    .await
    .map_err(fail("starting the cloud"))?;
    let (key, secret) = cloud
        .credentials("bench", "bench")
        .await
        .map_err(fail("credentials"))?;
    let client = Client::new(&cloud.endpoint, "nova", &key, &secret);
    let started = Instant::now();
    let listed = store_instances(&cloud, options.instances).await?;
    println!(
        "api bench: {} instances stored in {:.1} s; SigV4 checked on every request; {} in flight",
        options.instances,
        started.elapsed().as_secs_f64(),
        options.concurrency
    );
    describe(&client, &listed, options).await?;
    register_image(&cloud).await?;
    let started = Instant::now();
    let (runs, _) = load(
        &client,
        vec![RUN.to_owned(); options.runs],
        options.concurrency,
    )
    .await?;
    println!("{}", runs.line("RunInstances (1 instance each)"));
    all_running(&cloud).await?;
    println!(
        "all {} launched instances running {:.2} s after the first request",
        options.runs,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

const IMAGE_ID: &str = "ami-0000000000000bead";
const DESCRIBE: &str = "Action=DescribeInstances&Version=2016-11-15";
const RUN: &str = "Action=RunInstances&Version=2016-11-15&ImageId=ami-0000000000000bead&MinCount=1&MaxCount=1&InstanceType=m1.tiny";

/// `n` running instances in one project, straight into the tables, in
/// reservations of 100; their EC2 ids.
async fn store_instances(cloud: &FakeCloud, n: usize) -> Result<Vec<String>, BenchError> {
    let db = &cloud.api.cloud.db;
    let now = stratus_api::db::now();
    let per = 100;
    let mut listed = Vec::new();
    for r in 0..n.div_ceil(per) {
        let reservation = format!("r-{:017x}", r + 1);
        let count = per.min(n - r * per);
        let rows: Vec<InstanceRow> = (0..count)
            .map(|i| instance_row("bench", &reservation, (r * per + i) as i64, &now))
            .collect();
        listed.extend(rows.iter().map(|i| i.ec2_id.clone()));
        db.insert_reservation(&NewReservation {
            reservation_id: reservation,
            project_id: "bench".into(),
            client_token: None,
            instances: rows,
            tags: vec![("Name".into(), "bench".into())],
        })
        .await
        .map_err(fail("inserting instances"))?;
    }
    Ok(listed)
}

/// DescribeInstances over everything, a page, and one by id.
async fn describe(client: &Client, listed: &[String], options: Options) -> Result<(), BenchError> {
    let (whole, bytes) = load(client, vec![DESCRIBE.to_owned(); 10], 2).await?;
    println!(
        "{}  ({:.1} MB each)",
        whole.line(&format!("DescribeInstances, all {}", options.instances)),
        bytes as f64 / 1e6
    );
    let page = format!("{DESCRIBE}&MaxResults=1000");
    let (paged, _) = load(client, vec![page; 100], options.concurrency).await?;
    println!("{}", paged.line("DescribeInstances, 1000-instance page"));
    let by_id: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                "{DESCRIBE}&InstanceId.1={}",
                listed[(i * 7919) % listed.len()]
            )
        })
        .collect();
    let (one, _) = load(client, by_id, options.concurrency).await?;
    println!("{}", one.line("DescribeInstances, one by id"));
    Ok(())
}

/// The image RunInstances launches: a 1 MiB file on the fake hypervisors.
async fn register_image(cloud: &FakeCloud) -> Result<(), BenchError> {
    let disk = cloud.images.join("bench.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(1 << 20))
        .map_err(fail("image file"))?;
    cloud
        .api
        .cloud
        .db
        .insert_image(&ImageRow::machine(
            IMAGE_ID,
            "bench",
            "bench",
            &disk.display().to_string(),
        ))
        .await
        .map_err(fail("image"))
}

/// Waits until no instance of the project is pending; fails on any in
/// error or after 10 minutes.
async fn all_running(cloud: &FakeCloud) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let usage = cloud
            .api
            .cloud
            .db
            .instances("bench", None)
            .await
            .map_err(fail("listing"))?;
        let pending = usage
            .iter()
            .filter(|i| i.state == InstanceState::Pending)
            .count();
        let failed = usage
            .iter()
            .filter(|i| i.state == InstanceState::Error)
            .count();
        if failed > 0 {
            return Err(BenchError::new(
                "api",
                format!("{failed} instances went to error"),
            ));
        }
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::new(
                "api",
                format!("{pending} instances still pending after 10 minutes"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
