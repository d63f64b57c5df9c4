//! The shipped labelled set must stay at or above 0.95 accuracy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use switchboard_core::eval::evaluate;
use switchboard_core::nlu::Intent;
use switchboard_core::shop::Shop;

const DATA: &str = include_str!("../data/nlu_eval.tsv");

#[test]
fn shipped_eval_set_is_large_and_covers_every_intent() {
    let report = evaluate(DATA, &Shop::demo()).unwrap();
    assert!(report.total >= 300, "only {} utterances", report.total);
    for metrics in &report.per_intent {
        assert!(
            metrics.support >= 15,
            "{} has {}",
            metrics.intent,
            metrics.support
        );
    }
    assert_eq!(report.per_intent.len(), Intent::ALL.len());
}

#[test]
fn accuracy_on_the_shipped_set_is_at_least_0_95() {
    let report = evaluate(DATA, &Shop::demo()).unwrap();
    assert!(report.accuracy >= 0.95, "{report}");
}
