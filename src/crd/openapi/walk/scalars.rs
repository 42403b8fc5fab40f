//! Length, pattern and format of strings, and bounds of numbers: the checks whose messages
//! quote the value itself.

use super::{Walk, below, exceeds};
use crate::crd::openapi::path::Path;
use crate::crd::openapi::quoting::shown_str;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;

impl Walk<'_> {
    pub(super) fn check_string(&mut self, schema: &JSONSchemaProps, text: &str, path: &Path<'_>) {
        let length = text.chars().count();
        if let Some(max) = schema.max_length
            && exceeds(length, max)
        {
            self.push(format!(
                "{path}: Too long: may not be more than {max} bytes"
            ));
        }
        if let Some(min) = schema.min_length
            && below(length, min)
        {
            self.push(format!(
                "{path}: Invalid value: {}: {path} in body should be at least {min} chars long",
                shown_str(text)
            ));
        }
        if let Some(pattern) = &schema.pattern
            && let Ok(regex) = regex::Regex::new(pattern)
            && !regex.is_match(text)
        {
            self.push(format!(
                "{path}: Invalid value: {}: {path} in body should match '{pattern}'",
                shown_str(text)
            ));
        }
        if schema.format.as_deref() == Some("date-time") && text.parse::<jiff::Timestamp>().is_err()
        {
            self.push(format!(
                "{path}: Invalid value: {}: {path} in body must be of type date-time: {}",
                shown_str(text),
                shown_str(text)
            ));
        }
    }

    pub(super) fn check_number(
        &mut self,
        schema: &JSONSchemaProps,
        number: &serde_json::Number,
        path: &Path<'_>,
    ) {
        let shown = number.to_string();
        let value = number.as_f64().unwrap_or(f64::NAN);
        let range = match schema.format.as_deref() {
            Some("int32") => Some((f64::from(i32::MIN), f64::from(i32::MAX))),
            Some("int64") => Some((i64::MIN as f64, i64::MAX as f64)),
            _ => None,
        };
        let minimum = schema.minimum.into_iter().chain(range.map(|r| r.0));
        let maximum = schema.maximum.into_iter().chain(range.map(|r| r.1));
        // Only the tightest bound is reported, as one message.
        if let Some(min) = minimum.fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b)))) {
            let exclusive = schema.exclusive_minimum == Some(true) && Some(min) == schema.minimum;
            if value < min || exclusive && value <= min {
                let relation = if exclusive {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                self.push(format!(
                    "{path}: Invalid value: {shown}: {path} in body should be {relation} {min}"
                ));
            }
        }
        if let Some(max) = maximum.fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.min(b)))) {
            let exclusive = schema.exclusive_maximum == Some(true) && Some(max) == schema.maximum;
            if value > max || exclusive && value >= max {
                let relation = if exclusive {
                    "less than"
                } else {
                    "less than or equal to"
                };
                self.push(format!(
                    "{path}: Invalid value: {shown}: {path} in body should be {relation} {max}"
                ));
            }
        }
        if let Some(divisor) = schema.multiple_of
            && divisor > 0.0
            && (value / divisor).fract() != 0.0
        {
            self.push(format!(
                "{path}: Invalid value: {shown}: {path} in body should be a multiple of {divisor}"
            ));
        }
    }
}
