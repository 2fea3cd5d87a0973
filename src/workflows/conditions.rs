//! Conditions of `next` branches, in CEL (the Common Expression Language,
//! via the `cel` crate): a real expression language with strings, numbers,
//! comparisons, `&&`/`||`, `contains`, `startsWith`, `matches`, `size`, …
//!
//! Variables are the run's context keys (`PR_NUMBER`) and the outputs of
//! earlier agents (`review_text`), all as strings: convert explicitly
//! (`int(ISSUES) > 3`, `FLAG == "true"`).
//!
//! ```yaml
//! next:
//!   - if: "review_text.contains('LGTM')"
//!     then: commenter
//!   - if: "int(ISSUES) > 3 && !analysis_result.startsWith('ok')"
//!     then: analyzer
//!   - else: reviewer
//! ```
//!
//! A condition that does not compile is a load error of workflow.yaml; one
//! that names a variable the run does not have, or does not yield a
//! boolean, fails the run with a message naming the expression.

use std::collections::BTreeMap;

/// Checks that a condition compiles; the error is for a person.
pub fn compile(expression: &str) -> Result<(), String> {
    cel::Program::compile(expression)
        .map(|_| ())
        .map_err(|e| format!("the condition does not compile: {e}"))
}

/// Evaluates a condition against the run's variables.
pub fn evaluate(expression: &str, variables: &BTreeMap<String, String>) -> Result<bool, String> {
    let program = cel::Program::compile(expression)
        .map_err(|e| format!("condition {expression:?} does not compile: {e}"))?;
    let mut context = cel::Context::default();
    for (name, value) in variables {
        context
            .add_variable(name.as_str(), value.as_str())
            .map_err(|e| format!("variable {name}: {e}"))?;
    }
    match program.execute(&context) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!(
            "condition {expression:?} yields {other:?}, not true or false"
        )),
        Err(e) => Err(format!("condition {expression:?} failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn string_functions_and_logic() {
        let v = vars(&[("review_text", "LGTM, ship it"), ("ISSUES", "4")]);
        assert!(evaluate("review_text.contains('LGTM')", &v).unwrap());
        assert!(!evaluate("review_text.startsWith('no')", &v).unwrap());
        assert!(evaluate("int(ISSUES) > 3 && size(review_text) > 2", &v).unwrap());
    }

    #[test]
    fn errors_name_the_expression() {
        let v = vars(&[("a", "x")]);
        let e = evaluate("missing == 'x'", &v).unwrap_err();
        assert!(e.contains("missing"), "{e}");
        let e = evaluate("a + 'b'", &v).unwrap_err();
        assert!(e.contains("not true or false"), "{e}");
        assert!(compile("a ==").is_err());
        assert!(compile("a == 'x'").is_ok());
    }
}
