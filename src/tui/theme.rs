//! Colours and glyphs. Only the 16 basic ANSI colours, so the dashboard reads the same in any
//! terminal; with `NO_COLOR` every colour is dropped and the glyphs and words carry the meaning.

use ratatui::style::{Color, Modifier, Style};

use crate::job::Status;

/// The styles of the dashboard, with or without colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    color: bool,
}

impl Theme {
    /// A theme; `color: false` draws with modifiers (bold, reverse) only.
    pub fn new(color: bool) -> Self {
        Theme { color }
    }

    /// A foreground colour, or nothing without colour.
    pub fn fg(self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    /// The style of a status word and glyph.
    pub fn status(self, status: Status) -> Style {
        self.fg(status_color(status))
    }

    /// Text that matters less: labels, placeholders.
    pub fn dim(self) -> Style {
        self.fg(Color::DarkGray)
    }

    /// Column headings and section titles.
    pub fn heading(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    /// The selected row.
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// Errors: a reload failure, a refused command, a last error.
    pub fn error(self) -> Style {
        if self.color {
            Style::new().fg(Color::Red)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    /// Good news: a command that went through.
    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }

    /// Keys in the footer and the help.
    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    /// Borders of dialogs and overlays.
    pub fn border(self) -> Style {
        self.fg(Color::Cyan)
    }
}

fn status_color(status: Status) -> Color {
    match status {
        Status::Waiting => Color::Green,
        Status::Running => Color::Cyan,
        Status::Retrying => Color::LightRed,
        Status::Stopped => Color::Yellow,
        Status::Sleeping => Color::Blue,
        Status::Done => Color::Gray,
        Status::Deactivated => Color::Red,
        Status::Disabled => Color::DarkGray,
    }
}

/// The glyph in front of a status word. Single-width characters from the common symbol blocks,
/// none with an emoji presentation, so they line up in any terminal font.
pub fn glyph(status: Status) -> &'static str {
    match status {
        Status::Waiting => "●",
        Status::Running => "▶",
        Status::Retrying => "↻",
        Status::Stopped => "■",
        Status::Sleeping => "☾",
        Status::Done => "✔",
        Status::Deactivated => "✘",
        Status::Disabled => "○",
    }
}

/// Glyph and word: `● waiting`.
pub fn status_label(status: Status) -> String {
    format!("{} {}", glyph(status), status.as_str())
}

/// Whether the environment asks for no colour: `NO_COLOR` set and not empty (no-color.org).
pub fn no_color_env() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_means_no_colour_at_all() {
        let plain = Theme::new(false);
        for status in Status::ALL {
            assert_eq!(plain.status(status).fg, None);
        }
        assert_eq!(plain.error().fg, None);
        assert_eq!(plain.key().fg, None);
        assert!(plain.key().add_modifier.contains(Modifier::BOLD));
        let colored = Theme::new(true);
        assert_eq!(colored.status(Status::Deactivated).fg, Some(Color::Red));
    }
}
