//! `docs/releases.md`: the releases (commits of main) and the event majors retired since.
//!
//! The file is prose around two tables, each found by its header row wherever it is:
//!
//! - `| version | commit | date | notes |`: one row per release, oldest first. The commit is an
//!   abbreviated or full hash, or `unreleased` for the work that will become the next release.
//!   The gate compares with the last row that has a commit.
//! - `| subject | retired in | notes |`: event majors (`order.created.v1`) whose schema file may be
//!   gone, and the version that retired them.

/// One row of the releases table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// `0.1.0`.
    pub version: String,
    /// `None` for a release still being made (`unreleased`).
    pub commit: Option<String>,
    /// `2026-12-04`, or empty while unreleased.
    pub date: String,
}

/// One row of the retired majors table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retired {
    /// `order.created.v1`.
    pub subject: String,
    /// The version that retired it.
    pub version: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Releases {
    pub releases: Vec<Release>,
    pub retired: Vec<Retired>,
}

/// Why `docs/releases.md` cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReleasesError {
    #[error("no table with the header `| version | commit | date | notes |`")]
    NoReleasesTable,
    #[error("more than one table with the header `| version | commit | date | notes |`")]
    TwoReleasesTables,
    #[error("line {line}: {problem}")]
    BadRow { line: usize, problem: String },
    #[error("no release has a commit yet")]
    NoRelease,
}

enum Table {
    Releases,
    Retired,
    Other,
}

const RELEASES_HEADER: &[&str] = &["version", "commit", "date", "notes"];
const RETIRED_HEADER: &[&str] = &["subject", "retired in", "notes"];

impl Releases {
    /// The release the gate compares with: the last one that has a commit.
    pub fn last(&self) -> Result<(&Release, &str), ReleasesError> {
        self.releases
            .iter()
            .rev()
            .find_map(|r| r.commit.as_deref().map(|commit| (r, commit)))
            .ok_or(ReleasesError::NoRelease)
    }

    pub fn is_retired(&self, subject: &str) -> bool {
        self.retired.iter().any(|r| r.subject == subject)
    }
}

pub fn parse(text: &str) -> Result<Releases, ReleasesError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Releases::default();
    let mut releases_tables = 0;
    let mut i = 0;
    while i < lines.len() {
        let header = cells(lines[i]);
        let is_table = header.is_some()
            && lines
                .get(i + 1)
                .and_then(|l| cells(l))
                .is_some_and(|sep| sep.iter().all(|c| is_separator(c)));
        if !is_table {
            i += 1;
            continue;
        }
        let header: Vec<String> = header
            .unwrap_or_default()
            .iter()
            .map(|c| c.to_lowercase())
            .collect();
        let table = if header == RELEASES_HEADER {
            releases_tables += 1;
            Table::Releases
        } else if header == RETIRED_HEADER {
            Table::Retired
        } else {
            Table::Other
        };
        i += 2;
        while let Some(row) = lines.get(i).and_then(|l| cells(l)) {
            let line = i + 1;
            match table {
                Table::Releases => out.releases.push(release(&row, line)?),
                Table::Retired => out.retired.push(retired(&row, line)?),
                Table::Other => {}
            }
            i += 1;
        }
    }
    match releases_tables {
        0 => Err(ReleasesError::NoReleasesTable),
        1 => Ok(out),
        _ => Err(ReleasesError::TwoReleasesTables),
    }
}

/// The cells of a table row (`| a | b |`), trimmed and without backticks; `None` for other lines.
fn cells(line: &str) -> Option<Vec<String>> {
    let inner = line.trim().strip_prefix('|')?;
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    Some(
        inner
            .split('|')
            .map(|c| c.trim().trim_matches('`').trim().to_owned())
            .collect(),
    )
}

fn is_separator(cell: &str) -> bool {
    !cell.is_empty() && cell.chars().all(|c| c == '-' || c == ':')
}

fn release(row: &[String], line: usize) -> Result<Release, ReleasesError> {
    let bad = |problem: String| ReleasesError::BadRow { line, problem };
    let [version, commit, date, _notes] = row else {
        return Err(bad(format!("{} cells, the header has 4", row.len())));
    };
    if version.is_empty() {
        return Err(bad("no version".into()));
    }
    let commit = if commit.eq_ignore_ascii_case("unreleased") {
        None
    } else if (7..=40).contains(&commit.len()) && commit.chars().all(|c| c.is_ascii_hexdigit()) {
        Some(commit.clone())
    } else {
        return Err(bad(format!(
            "commit {commit:?} is neither a hash (7 to 40 hex digits) nor `unreleased`"
        )));
    };
    let is_date = date.len() == 10
        && date.char_indices().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    if commit.is_some() && !is_date {
        return Err(bad(format!("date {date:?} is not YYYY-MM-DD")));
    }
    Ok(Release {
        version: version.clone(),
        commit,
        date: date.clone(),
    })
}

fn retired(row: &[String], line: usize) -> Result<Retired, ReleasesError> {
    let bad = |problem: String| ReleasesError::BadRow { line, problem };
    let [subject, version, _notes] = row else {
        return Err(bad(format!("{} cells, the header has 3", row.len())));
    };
    let is_subject = subject.rsplit_once(".v").is_some_and(|(name, major)| {
        name.contains('.') && !major.is_empty() && major.chars().all(|c| c.is_ascii_digit())
    });
    if !is_subject {
        return Err(bad(format!(
            "{subject:?} is not an event subject like order.created.v1"
        )));
    }
    Ok(Retired {
        subject: subject.clone(),
        version: version.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# Releases\n\
        \n\
        Prose the gate does not read.\n\
        \n\
        | version | commit | date | notes |\n\
        | --- | --- | --- | --- |\n\
        | 0.1.0 | `81c6e2c` | 2026-12-04 | The first release. |\n\
        | 0.2.0 | 0123456789abcdef0123456789abcdef01234567 | 2027-01-10 | Money in minor units. |\n\
        | 0.3.0 | unreleased | | |\n\
        \n\
        ## Retired event majors\n\
        \n\
        | subject | retired in | notes |\n\
        |:--|:--|:--|\n\
        | order.created.v1 | 0.3.0 | order.created.v2 since 0.2.0 |\n";

    #[test]
    fn the_last_release_with_a_commit_is_the_one_compared_with() {
        let releases = parse(FILE).expect("parses");
        assert_eq!(releases.releases.len(), 3);
        let (release, commit) = releases.last().expect("a release");
        assert_eq!(release.version, "0.2.0");
        assert_eq!(commit, "0123456789abcdef0123456789abcdef01234567");
        assert!(releases.is_retired("order.created.v1"));
        assert!(!releases.is_retired("order.created.v2"));
    }

    #[test]
    fn backticks_around_a_commit_are_not_part_of_it() {
        let releases = parse(FILE).expect("parses");
        assert_eq!(releases.releases[0].commit.as_deref(), Some("81c6e2c"));
    }

    #[test]
    fn only_unreleased_rows_is_no_release() {
        let text =
            "| version | commit | date | notes |\n|---|---|---|---|\n| 0.1.0 | unreleased | | |\n";
        assert_eq!(
            parse(text).expect("parses").last().map(|(r, _)| r.clone()),
            Err(ReleasesError::NoRelease)
        );
    }

    #[test]
    fn a_malformed_row_names_its_line() {
        let text = "| version | commit | date | notes |\n|---|---|---|---|\n| 0.1.0 | main | 2026-12-04 | |\n";
        assert!(matches!(
            parse(text),
            Err(ReleasesError::BadRow { line: 3, .. })
        ));
        let text = "| version | commit | date | notes |\n|---|---|---|---|\n| 0.1.0 | 81c6e2c | 4 Dec | |\n";
        assert!(matches!(
            parse(text),
            Err(ReleasesError::BadRow { line: 3, .. })
        ));
        let text = "| version | commit | date | notes |\n|---|---|---|---|\n| 0.1.0 | 81c6e2c | 2026-12-04 | |\n\n| subject | retired in | notes |\n|---|---|---|\n| order.created | 0.2.0 | |\n";
        assert!(matches!(
            parse(text),
            Err(ReleasesError::BadRow { line: 7, .. })
        ));
    }

    #[test]
    fn a_file_without_the_table_is_refused() {
        assert_eq!(
            parse("# Releases\n\nNone yet.\n"),
            Err(ReleasesError::NoReleasesTable)
        );
    }

    #[test]
    fn other_tables_are_prose() {
        let text = format!("| a | b |\n|---|---|\n| 1 | 2 |\n\n{FILE}");
        assert_eq!(parse(&text).expect("parses").releases.len(), 3);
    }
}
