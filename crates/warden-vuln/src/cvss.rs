//! CVSS base scores from vector strings, so a disclosed rating can be computed where a scanner
//! gives only the vector. v3.0 and v3.1 are scored here (FIRST's specification, section 7):
//! strictly (every base metric, once) while accepting the temporal and environmental metrics
//! NVD's vectors carry, which the `cvss` crate's v3 parser refuses. v4.0 is scored by the
//! `cvss` crate (RustSec's), whose macrovector tables are the specification's.

use crate::Severity;

/// Why a vector was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CVSS vector `{vector}`: {why}")]
pub struct CvssError {
    vector: String,
    why: String,
}

/// A vector's base score and its qualitative rating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CvssRating {
    /// 0.0 to 10.0, to one decimal.
    pub score: f64,
    /// The rating of the score.
    pub severity: Severity,
}

/// Scores a CVSS v3.0, v3.1 or v4.0 vector.
pub fn rate(vector: &str) -> Result<CvssRating, CvssError> {
    let trimmed = vector.trim();
    if trimmed.starts_with("CVSS:4.0/") {
        let parsed: ::cvss::v4::Vector = trimmed.parse().map_err(|e: ::cvss::Error| CvssError {
            vector: shown(vector),
            why: e.to_string(),
        })?;
        let score = parsed.score().value();
        return Ok(CvssRating {
            score,
            severity: Severity::from_score(score),
        });
    }
    let parsed = Cvss31::parse(vector)?;
    Ok(CvssRating {
        score: parsed.base_score(),
        severity: parsed.severity(),
    })
}

/// A vector as errors show it: at most 120 characters, escaped.
fn shown(vector: &str) -> String {
    vector
        .chars()
        .take(120)
        .flat_map(char::escape_debug)
        .collect()
}

/// A parsed CVSS v3.x vector's base metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cvss31 {
    av: f64,
    ac: f64,
    pr: f64,
    ui: f64,
    changed: bool,
    c: f64,
    i: f64,
    a: f64,
}

/// Temporal and environmental metrics: allowed, and not part of the base score.
const OTHER_METRICS: [&str; 14] = [
    "E", "RL", "RC", "CR", "IR", "AR", "MAV", "MAC", "MPR", "MUI", "MS", "MC", "MI", "MA",
];

impl Cvss31 {
    /// Parses `CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H` (or `CVSS:3.0/…`).
    pub fn parse(vector: &str) -> Result<Cvss31, CvssError> {
        let err = |why: &str| CvssError {
            vector: shown(vector),
            why: why.to_owned(),
        };
        let mut parts = vector.trim().split('/');
        match parts.next() {
            Some("CVSS:3.1" | "CVSS:3.0") => {}
            _ => return Err(err("it must start with CVSS:4.0/, CVSS:3.1/ or CVSS:3.0/")),
        }
        let mut base: [Option<&str>; 8] = [None; 8];
        let names = ["AV", "AC", "PR", "UI", "S", "C", "I", "A"];
        for part in parts {
            let (k, v) = part
                .split_once(':')
                .ok_or_else(|| err(&format!("`{part}` is not METRIC:VALUE")))?;
            match names.iter().position(|n| *n == k) {
                Some(at) => {
                    let slot = base.get_mut(at).ok_or_else(|| err("metric"))?;
                    if slot.is_some() {
                        return Err(err(&format!("`{k}` appears twice")));
                    }
                    *slot = Some(v);
                }
                None if OTHER_METRICS.contains(&k) => {}
                None => return Err(err(&format!("unknown metric `{k}`"))),
            }
        }
        let get = |at: usize| -> Result<&str, CvssError> {
            base.get(at).copied().flatten().ok_or_else(|| {
                err(&format!(
                    "base metric `{}` is missing",
                    names.get(at).copied().unwrap_or("?")
                ))
            })
        };
        let bad = |k: &str, v: &str| err(&format!("`{k}:{v}` is not a value of `{k}`"));
        let changed = match get(4)? {
            "U" => false,
            "C" => true,
            v => return Err(bad("S", v)),
        };
        let av = match get(0)? {
            "N" => 0.85,
            "A" => 0.62,
            "L" => 0.55,
            "P" => 0.2,
            v => return Err(bad("AV", v)),
        };
        let ac = match get(1)? {
            "L" => 0.77,
            "H" => 0.44,
            v => return Err(bad("AC", v)),
        };
        let pr = match (get(2)?, changed) {
            ("N", _) => 0.85,
            ("L", false) => 0.62,
            ("L", true) => 0.68,
            ("H", false) => 0.27,
            ("H", true) => 0.5,
            (v, _) => return Err(bad("PR", v)),
        };
        let ui = match get(3)? {
            "N" => 0.85,
            "R" => 0.62,
            v => return Err(bad("UI", v)),
        };
        let cia = |k: &str, v: &str| match v {
            "H" => Ok(0.56),
            "L" => Ok(0.22),
            "N" => Ok(0.0),
            _ => Err(bad(k, v)),
        };
        Ok(Cvss31 {
            av,
            ac,
            pr,
            ui,
            changed,
            c: cia("C", get(5)?)?,
            i: cia("I", get(6)?)?,
            a: cia("A", get(7)?)?,
        })
    }

    /// The base score, 0.0 to 10.0, to one decimal.
    pub fn base_score(&self) -> f64 {
        let iss = 1.0 - (1.0 - self.c) * (1.0 - self.i) * (1.0 - self.a);
        let impact = if self.changed {
            7.52 * (iss - 0.029) - 3.25 * (iss - 0.02).powi(15)
        } else {
            6.42 * iss
        };
        if impact <= 0.0 {
            return 0.0;
        }
        let exploitability = 8.22 * self.av * self.ac * self.pr * self.ui;
        let raw = if self.changed {
            1.08 * (impact + exploitability)
        } else {
            impact + exploitability
        };
        roundup(raw.min(10.0))
    }

    /// The qualitative rating of the base score.
    pub fn severity(&self) -> Severity {
        Severity::from_score(self.base_score())
    }
}

/// The specification's Roundup: the smallest one-decimal number not below `x`, computed on
/// integers so floating point noise cannot push 4.0 to 4.1.
fn roundup(x: f64) -> f64 {
    #[expect(clippy::cast_possible_truncation, reason = "x is between 0 and 10")]
    let scaled = (x * 100_000.0).round() as i64;
    if scaled % 10_000 == 0 {
        scaled as f64 / 100_000.0
    } else {
        ((scaled / 10_000) + 1) as f64 / 10.0
    }
}
