//! JUnit XML: one test case per step and per threshold, so CI servers show failures natively.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report as JUnit, TestCase, TestCaseStatus, TestSuite};

use super::{Error, Report, Result, StepStatus, ThresholdStatus};

/// Renders the report as JUnit XML.
pub fn to_junit(report: &Report) -> Result<String> {
    let mut junit = JUnit::new(format!("scen {}", report.scenario.name));
    junit.set_timestamp(report.started_at.fixed_offset());
    junit.set_time(Duration::from_secs_f64(report.duration_ms / 1e3));

    let mut steps = TestSuite::new(format!("{} steps", report.scenario.name));
    steps.set_timestamp(report.started_at.fixed_offset());
    for s in &report.steps {
        let status = match s.status {
            StepStatus::Passed => TestCaseStatus::success(),
            StepStatus::Skipped => {
                let mut st = TestCaseStatus::skipped();
                st.set_message("not run: the run stopped before this step");
                st
            }
            StepStatus::Failed | StepStatus::Interrupted => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
                let e = s.error.as_ref();
                st.set_message(e.map_or("step did not finish".to_string(), |e| e.message.clone()));
                st.set_type(e.map_or("interrupted".to_string(), |e| e.kind.to_string()));
                if let Some(loc) = e.and_then(|e| e.location.clone()) {
                    st.set_description(format!("at {loc}"));
                }
                st
            }
        };
        let mut tc = TestCase::new(s.name.clone(), status);
        tc.set_classname(format!("{}.steps", report.scenario.name));
        tc.set_time(Duration::from_secs_f64(s.duration_ms.max(0.0) / 1e3));
        if s.status == StepStatus::Passed {
            tc.set_system_out(
                serde_json::to_string_pretty(&s.record.to_value()).unwrap_or_default(),
            );
        }
        steps.add_test_case(tc);
    }

    let mut thresholds = TestSuite::new(format!("{} thresholds", report.scenario.name));
    for t in &report.thresholds {
        let status = match t.status {
            ThresholdStatus::Passed => TestCaseStatus::success(),
            ThresholdStatus::NotEvaluated => {
                let mut st = TestCaseStatus::skipped();
                st.set_message(t.message.clone());
                st
            }
            ThresholdStatus::Failed
            | ThresholdStatus::Error
            | ThresholdStatus::NoData
            | ThresholdStatus::Inconclusive => {
                let kind = if t.status == ThresholdStatus::Failed {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let mut st = TestCaseStatus::non_success(kind);
                st.set_message(t.message.clone());
                st.set_type(match t.status {
                    ThresholdStatus::Failed => "threshold failed",
                    ThresholdStatus::NoData => "threshold had no data",
                    ThresholdStatus::Inconclusive => "threshold inconclusive",
                    _ => "threshold error",
                });
                st.set_description(format!("{} ({})", t.expression, t.location));
                st
            }
        };
        let mut tc = TestCase::new(t.expression.clone(), status);
        tc.set_classname(format!("{}.thresholds", report.scenario.name));
        thresholds.add_test_case(tc);
    }
    junit.add_test_suites([steps, thresholds]);
    junit.to_string().map_err(|e| Error::Render {
        format: "junit",
        reason: e.to_string(),
    })
}
