//! Finding the line of a dotted key path (`instances.min`, `zones[1]`) in YAML text, so validation
//! errors can name a line even though serde_yaml does not keep spans for values.

/// The 1-based line where `key` (dotted path, `[i]` for sequence items) is written, if found.
pub fn locate(text: &str, key: &str) -> Option<usize> {
    let mut segments = Vec::new();
    for part in key.split('.') {
        match part.split_once('[') {
            Some((name, rest)) => {
                segments.push(Segment::Key(name));
                let index = rest.trim_end_matches(']').parse().ok()?;
                segments.push(Segment::Item(index));
            }
            None => segments.push(Segment::Key(part)),
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    // Search window: lines after `from` that are indented deeper than `parent` (None at top level).
    let (mut from, mut parent): (usize, Option<usize>) = (0, None);
    let mut found = None;
    for segment in segments {
        let mut item = 0usize;
        let mut hit = None;
        for (i, line) in lines.iter().enumerate().skip(from) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            let same_line = found == Some(i + 1);
            if !same_line && parent.is_some_and(|p| indent <= p) {
                break;
            }
            let matched = match segment {
                Segment::Key(name) => {
                    !same_line && trimmed.strip_prefix(name).is_some_and(|r| r.starts_with(':'))
                }
                Segment::Item(n) if same_line => flow_has_item(trimmed, n),
                Segment::Item(n) if trimmed.starts_with('-') => {
                    item += 1;
                    item == n + 1
                }
                Segment::Item(_) => false,
            };
            if matched {
                hit = Some((i, indent));
                break;
            }
        }
        let Some((line, indent)) = hit else { return found };
        found = Some(line + 1);
        from = line;
        parent = Some(indent);
    }
    found
}

/// A flow sequence like `zones: [a, b]` holds item `n` on this very line.
fn flow_has_item(trimmed: &str, n: usize) -> bool {
    match trimmed.find('[') {
        Some(open) => trimmed[open + 1..].trim_end().trim_end_matches(']').split(',').count() > n,
        None => false,
    }
}

#[derive(Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Item(usize),
}

#[cfg(test)]
mod tests {
    use super::locate;

    const TEXT: &str = "target: aws\nzones: [a, b]\ninstances:\n  type: t3.micro\n  min: 3\n  desired: 2\nhealth_check:\n  path: /x\ntags:\n  - one\n  - two\n";

    #[test]
    fn finds_nested_keys_and_items() {
        assert_eq!(locate(TEXT, "target"), Some(1));
        assert_eq!(locate(TEXT, "instances.min"), Some(5));
        assert_eq!(locate(TEXT, "instances.desired"), Some(6));
        assert_eq!(locate(TEXT, "health_check.path"), Some(8));
        assert_eq!(locate(TEXT, "zones[1]"), Some(2));
        assert_eq!(locate(TEXT, "tags[1]"), Some(11));
    }

    #[test]
    fn missing_key_falls_back_to_nearest_parent() {
        assert_eq!(locate(TEXT, "health_check.interval_seconds"), Some(7));
        assert_eq!(locate(TEXT, "nothing"), None);
    }
}
