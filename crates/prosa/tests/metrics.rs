//! prosa's metrics against scikit-learn's on a fixed example (fixture made by
//! tests/fixtures/make_metrics_fixture.py).

use prosa::metrics::ClassificationReport;
use serde_json::Value;

fn fixture() -> Value {
    let text = include_str!("fixtures/metrics_sklearn.json");
    serde_json::from_str(text).expect("valid fixture")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn close(a: f64, b: &Value, what: &str) {
    let b = b.as_f64().unwrap();
    assert!(
        (a - b).abs() < 1e-12,
        "{what}: prosa {a} vs scikit-learn {b}"
    );
}

#[test]
fn classification_metrics_match_scikit_learn() {
    let f = fixture();
    let labels: Vec<String> = f["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    let report = ClassificationReport::new(&ids(&f["y_true"]), &ids(&f["y_pred"]), &labels);
    close(report.accuracy, &f["accuracy"], "accuracy");
    for (name, ours) in [
        ("macro", report.macro_avg),
        ("micro", report.micro_avg),
        ("weighted", report.weighted_avg),
    ] {
        close(
            ours.precision,
            &f[name]["precision"],
            &format!("{name} precision"),
        );
        close(ours.recall, &f[name]["recall"], &format!("{name} recall"));
        close(ours.f1, &f[name]["f1"], &format!("{name} f1"));
    }
    for (c, ours) in report.per_class.iter().enumerate() {
        close(
            ours.precision,
            &f["per_class"]["precision"][c],
            "class precision",
        );
        close(ours.recall, &f["per_class"]["recall"][c], "class recall");
        close(ours.f1, &f["per_class"]["f1"][c], "class f1");
    }
    let confusion: Vec<Vec<usize>> = serde_json::from_value(f["confusion"].clone()).unwrap();
    assert_eq!(report.confusion.counts, confusion);
    assert_eq!(report.to_table(), f["report_text"].as_str().unwrap());
}
