//! Plain-text tables for the terminal: columns padded to their widest
//! cell, numbers right-aligned.

/// Renders `rows` (the first is the header). Columns for which
/// `right_aligned` holds are right-aligned; trailing spaces are trimmed.
pub fn render(rows: &[Vec<String>], right_aligned: impl Fn(usize) -> bool) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, &w)) in row.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(w - cell.chars().count());
            if right_aligned(i) {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_and_numbers_right_aligned() {
        let rows = vec![
            vec!["name".to_string(), "count".into(), "note".into()],
            vec!["a".into(), "1,000".into(), "x".into()],
            vec!["ünïcode".into(), "7".into(), String::new()],
        ];
        let text = render(&rows, |i| i == 1);
        assert_eq!(
            text,
            "name     count  note\n\
             a        1,000  x\n\
             ünïcode      7\n"
        );
    }
}
