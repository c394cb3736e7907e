//! The shipped control catalogs: one versioned TOML file per framework (`catalogs/`), each
//! control naming its framework text, the tests that evidence it and what they cannot.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::test_id::TestId;

/// A compliance framework Warden ships a catalog for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    /// SOC 2: the AICPA Trust Services Criteria's common criteria.
    Soc2,
    /// HIPAA: the Security Rule's technical and related administrative safeguards.
    Hipaa,
}

impl Framework {
    /// Every framework, in the order they are shown.
    pub const ALL: [Framework; 2] = [Framework::Soc2, Framework::Hipaa];

    /// The name used on the command line and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Framework::Soc2 => "soc2",
            Framework::Hipaa => "hipaa",
        }
    }

    /// The framework's catalog, as shipped.
    pub fn catalog(self) -> &'static Catalog {
        match self {
            Framework::Soc2 => &shipped().soc2,
            Framework::Hipaa => &shipped().hipaa,
        }
    }
}

impl fmt::Display for Framework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A framework name that is not one Warden ships.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown framework `{0}`: soc2 or hipaa")]
pub struct UnknownFramework(pub String);

impl FromStr for Framework {
    type Err = UnknownFramework;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "soc2" | "soc-2" => Ok(Framework::Soc2),
            "hipaa" => Ok(Framework::Hipaa),
            _ => Err(UnknownFramework(s.to_owned())),
        }
    }
}

/// One framework's controls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Which framework.
    pub framework: Framework,
    /// Its full name and edition.
    pub title: String,
    /// The catalog's own version: a change of wording or of tests is a new one.
    pub version: String,
    /// The controls, in the framework's order.
    #[serde(rename = "control")]
    pub controls: Vec<Control>,
}

/// One control: a criterion or a safeguard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// The framework's reference (`CC6.1`, `164.312(d)`).
    pub id: String,
    /// A short name.
    pub title: String,
    /// The framework's text.
    pub text: String,
    /// The automated tests that evidence it; none where Warden cannot.
    pub tests: Vec<TestId>,
    /// What Warden cannot evidence, left to the organisation.
    pub not_evidenced: String,
}

impl Catalog {
    /// The control with this reference, compared without case.
    pub fn control(&self, id: &str) -> Result<&Control, UnknownControl> {
        self.controls
            .iter()
            .find(|c| c.id.eq_ignore_ascii_case(id))
            .ok_or_else(|| UnknownControl {
                framework: self.framework,
                id: id.to_owned(),
            })
    }

    /// Every test some control of this catalog names, each once, in test order.
    pub fn tests(&self) -> Vec<TestId> {
        let mut tests: Vec<TestId> = self
            .controls
            .iter()
            .flat_map(|c| c.tests.iter().copied())
            .collect();
        tests.sort_unstable();
        tests.dedup();
        tests
    }
}

/// A control reference the catalog does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown control `{id}` in {framework}: `warden compliance status --framework {framework}` lists them"
)]
pub struct UnknownControl {
    /// The catalog asked.
    pub framework: Framework,
    /// The reference given.
    pub id: String,
}

/// A catalog file that does not read. Shipped catalogs are checked by this crate's tests, so
/// this is seen only by someone editing one.
#[derive(Debug, thiserror::Error)]
#[error("catalog {file}: {message}")]
pub struct CatalogError {
    file: &'static str,
    message: String,
}

struct Shipped {
    soc2: Catalog,
    hipaa: Catalog,
}

fn shipped() -> &'static Shipped {
    static SHIPPED: std::sync::OnceLock<Shipped> = std::sync::OnceLock::new();
    SHIPPED.get_or_init(|| Shipped {
        soc2: read_or_empty("soc2.toml", SOC2, Framework::Soc2),
        hipaa: read_or_empty("hipaa.toml", HIPAA, Framework::Hipaa),
    })
}

const SOC2: &str = include_str!("../catalogs/soc2.toml");
const HIPAA: &str = include_str!("../catalogs/hipaa.toml");

/// Reads a shipped catalog. A broken one (which this crate's tests refuse to ship) reads as a
/// catalog without controls, so nothing can pass for want of a control.
fn read_or_empty(file: &'static str, text: &str, framework: Framework) -> Catalog {
    read(file, text).unwrap_or_else(|e| Catalog {
        framework,
        title: e.to_string(),
        version: String::new(),
        controls: Vec::new(),
    })
}

/// Reads a catalog file and checks it: known tests, unique control ids, non-empty texts.
pub fn read(file: &'static str, text: &str) -> Result<Catalog, CatalogError> {
    let fail = |message: String| CatalogError { file, message };
    let catalog: Catalog = toml::from_str(text).map_err(|e| fail(e.message().to_owned()))?;
    let mut ids: Vec<String> = catalog
        .controls
        .iter()
        .map(|c| c.id.to_ascii_lowercase())
        .collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w.first() == w.get(1)) {
        return Err(fail(format!(
            "control `{}` is listed twice",
            w.first().map_or("", String::as_str)
        )));
    }
    if let Some(c) = catalog
        .controls
        .iter()
        .find(|c| c.text.trim().is_empty() || c.not_evidenced.trim().is_empty())
    {
        return Err(fail(format!(
            "control `{}` needs its text and what it cannot evidence",
            c.id
        )));
    }
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalogs_read_and_name_the_issues_controls() {
        let soc2 = read("soc2.toml", SOC2).unwrap();
        for id in [
            "CC6.1", "CC6.2", "CC6.3", "CC6.6", "CC6.7", "CC6.8", "CC7.1", "CC7.2", "CC8.1",
        ] {
            assert!(!soc2.control(id).unwrap().tests.is_empty(), "{id}");
        }
        let hipaa = read("hipaa.toml", HIPAA).unwrap();
        for id in [
            "164.308(a)(1)(ii)(D)",
            "164.308(a)(3)(ii)(C)",
            "164.308(a)(4)",
            "164.308(a)(5)(ii)(C)",
            "164.312(a)(1)",
            "164.312(a)(2)(i)",
            "164.312(a)(2)(ii)",
            "164.312(a)(2)(iii)",
            "164.312(a)(2)(iv)",
            "164.312(b)",
            "164.312(c)(1)",
            "164.312(d)",
            "164.312(e)(1)",
        ] {
            hipaa.control(id).unwrap();
        }
        assert_eq!(Framework::Soc2.catalog(), &soc2);
        assert_eq!(Framework::Hipaa.catalog(), &hipaa);
    }

    #[test]
    fn every_test_is_named_by_some_control() {
        let mut named: Vec<TestId> = Framework::ALL
            .iter()
            .flat_map(|f| f.catalog().tests())
            .collect();
        named.sort_unstable();
        named.dedup();
        assert_eq!(named, TestId::ALL.to_vec());
    }

    #[test]
    fn bad_catalogs_and_names_are_refused_in_one_line() {
        assert_eq!(
            "pci".parse::<Framework>().unwrap_err().to_string(),
            "unknown framework `pci`: soc2 or hipaa"
        );
        assert_eq!(
            Framework::Soc2
                .catalog()
                .control("CC9.9")
                .unwrap_err()
                .to_string(),
            "unknown control `CC9.9` in soc2: `warden compliance status --framework soc2` lists them"
        );
        let twice = "framework = \"soc2\"\ntitle = \"t\"\nversion = \"1\"\n\
            [[control]]\nid = \"A\"\ntitle = \"a\"\ntext = \"x\"\ntests = []\nnot_evidenced = \"y\"\n\
            [[control]]\nid = \"a\"\ntitle = \"a\"\ntext = \"x\"\ntests = []\nnot_evidenced = \"y\"\n";
        assert_eq!(
            read("t.toml", twice).unwrap_err().to_string(),
            "catalog t.toml: control `a` is listed twice"
        );
        let unknown_test = twice.replace(
            "tests = []\nnot_evidenced = \"y\"\n[[control]]",
            "tests = [\"nope\"]\nnot_evidenced = \"y\"\n[[control]]",
        );
        assert!(
            read("t.toml", &unknown_test)
                .unwrap_err()
                .to_string()
                .starts_with("catalog t.toml: unknown variant `nope`"),
        );
    }
}
