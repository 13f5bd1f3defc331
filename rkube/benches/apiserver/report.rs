//! The result table, printed aligned for the terminal and again as Markdown.

/// Whether a measured figure meets its target.
#[derive(Clone, Copy)]
pub enum Verdict {
    Met,
    Missed,
    /// A reference figure without a target.
    Reference,
}

impl Verdict {
    pub fn of(met: bool) -> Verdict {
        if met { Verdict::Met } else { Verdict::Missed }
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "MISSED",
            Verdict::Reference => "-",
        }
    }
}

pub struct Row {
    pub figure: String,
    pub measured: String,
    pub target: String,
    pub verdict: Verdict,
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

const HEADER: [&str; 4] = ["figure", "measured", "target", "verdict"];

impl Report {
    pub fn row(&mut self, figure: &str, measured: String, target: &str, verdict: Verdict) {
        self.rows.push(Row {
            figure: figure.into(),
            measured,
            target: target.into(),
            verdict,
        });
    }

    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    fn cells(&self) -> Vec<[&str; 4]> {
        self.rows
            .iter()
            .map(|r| {
                [
                    r.figure.as_str(),
                    r.measured.as_str(),
                    r.target.as_str(),
                    r.verdict.label(),
                ]
            })
            .collect()
    }

    pub fn plain(&self) -> String {
        let rows = self.cells();
        let mut widths = HEADER.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let line = |cells: &[&str; 4]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            padded.join("  ").trim_end().to_string() + "\n"
        };
        let mut out = line(&HEADER);
        out += &(widths.map(|w| "-".repeat(w)).join("  ") + "\n");
        for row in &rows {
            out += &line(row);
        }
        for note in &self.notes {
            out += &format!("\n{note}");
        }
        out + "\n"
    }

    pub fn markdown(&self) -> String {
        let mut out = format!("| {} |\n|---|---|---|---|\n", HEADER.join(" | "));
        for row in self.cells() {
            out += &format!("| {} |\n", row.join(" | "));
        }
        for note in &self.notes {
            out += &format!("\n{note}\n");
        }
        out
    }
}
