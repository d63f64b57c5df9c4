//! Measuring the understanding on labelled utterances (`text<TAB>intent`
//! lines; `#` starts a comment): accuracy, per-intent precision, recall and
//! F1, and which intents get confused with which.

use std::collections::BTreeMap;
use std::fmt;

use crate::nlu::{Intent, Lexicon, understand_with};
use crate::shop::Shop;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("line {line}: expected `text<TAB>intent`")]
    MissingTab { line: usize },
    #[error("line {line}: unknown intent `{name}`")]
    UnknownIntent { line: usize, name: String },
    #[error("line {line}: the utterance is empty")]
    EmptyText { line: usize },
    #[error("no labelled utterances found")]
    Empty,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IntentMetrics {
    pub intent: Intent,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Utterances labelled with this intent.
    pub support: usize,
}

/// One utterance the assistant got wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Miss {
    pub line: usize,
    pub text: String,
    pub expected: Intent,
    pub got: Intent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    pub total: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// Every intent, in [`Intent::ALL`] order.
    pub per_intent: Vec<IntentMetrics>,
    /// (expected, got, count), most frequent first.
    pub confusions: Vec<(Intent, Intent, usize)>,
    pub misses: Vec<Miss>,
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Parses labelled lines and scores the understanding of each.
pub fn evaluate(labelled: &str, shop: &Shop) -> Result<EvalReport, EvalError> {
    let lexicon = Lexicon::new(shop);
    let mut results = Vec::new();
    for (index, line) in labelled.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (text, name) = line
            .rsplit_once('\t')
            .ok_or(EvalError::MissingTab { line: number })?;
        let name = name.trim();
        let expected = Intent::from_name(name).ok_or_else(|| EvalError::UnknownIntent {
            line: number,
            name: name.to_owned(),
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err(EvalError::EmptyText { line: number });
        }
        let got = understand_with(&lexicon, text).intent;
        results.push((number, text.to_owned(), expected, got));
    }
    if results.is_empty() {
        return Err(EvalError::Empty);
    }

    let total = results.len();
    let correct = results
        .iter()
        .filter(|(_, _, expected, got)| expected == got)
        .count();
    let per_intent = Intent::ALL
        .iter()
        .map(|&intent| {
            let support = results.iter().filter(|r| r.2 == intent).count();
            let predicted = results.iter().filter(|r| r.3 == intent).count();
            let hits = results
                .iter()
                .filter(|r| r.2 == intent && r.3 == intent)
                .count();
            let precision = ratio(hits, predicted);
            let recall = ratio(hits, support);
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            IntentMetrics {
                intent,
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let mut pairs: BTreeMap<(Intent, Intent), usize> = BTreeMap::new();
    let mut misses = Vec::new();
    for (line, text, expected, got) in results {
        if expected != got {
            *pairs.entry((expected, got)).or_default() += 1;
            misses.push(Miss {
                line,
                text,
                expected,
                got,
            });
        }
    }
    let mut confusions: Vec<(Intent, Intent, usize)> = pairs
        .into_iter()
        .map(|((expected, got), count)| (expected, got, count))
        .collect();
    confusions.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1)));
    Ok(EvalReport {
        total,
        correct,
        accuracy: ratio(correct, total),
        per_intent,
        confusions,
        misses,
    })
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "accuracy: {:.3} ({} of {} utterances)",
            self.accuracy, self.correct, self.total
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<16} {:>9} {:>9} {:>9} {:>8}",
            "intent", "precision", "recall", "f1", "support"
        )?;
        for metrics in &self.per_intent {
            writeln!(
                f,
                "{:<16} {:>9.3} {:>9.3} {:>9.3} {:>8}",
                metrics.intent.as_str(),
                metrics.precision,
                metrics.recall,
                metrics.f1,
                metrics.support
            )?;
        }
        if self.confusions.is_empty() {
            writeln!(f, "\nno confusions")?;
        } else {
            writeln!(f, "\nconfusions (expected -> got: count):")?;
            for (expected, got, count) in &self.confusions {
                writeln!(f, "  {expected} -> {got}: {count}")?;
            }
        }
        if !self.misses.is_empty() {
            writeln!(f, "\nmisses:")?;
            for miss in &self.misses {
                writeln!(
                    f,
                    "  line {}: {:?} expected {}, got {}",
                    miss.line, miss.text, miss.expected, miss.got
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_set_is_scored_and_confusions_are_counted() {
        let data = "# comment\nhello\tgreet\nwhat is the weather\tgreet\n\nbye\tgoodbye\n";
        let report = evaluate(data, &Shop::demo()).unwrap();
        assert_eq!(report.total, 3);
        assert_eq!(report.correct, 2);
        assert_eq!(
            report.confusions,
            vec![(Intent::Greet, Intent::OutOfScope, 1)]
        );
        let greet = &report.per_intent[0];
        assert_eq!(greet.support, 2);
        assert!((greet.recall - 0.5).abs() < 1e-9);
        assert!((greet.precision - 1.0).abs() < 1e-9);
        assert!(report.to_string().contains("greet -> out_of_scope: 1"));
    }

    #[test]
    fn malformed_lines_are_reported_with_their_number() {
        let shop = Shop::demo();
        assert_eq!(
            evaluate("hello\tgreet\nno tab here\n", &shop),
            Err(EvalError::MissingTab { line: 2 })
        );
        assert_eq!(
            evaluate("hello\tsalute\n", &shop),
            Err(EvalError::UnknownIntent {
                line: 1,
                name: "salute".into()
            })
        );
        assert_eq!(evaluate("# only a comment\n", &shop), Err(EvalError::Empty));
    }
}
