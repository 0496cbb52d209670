//! The keys of the dashboard, as data: one table per input context. The key lookup, the help
//! overlay and the footer hints all read these tables, so they cannot disagree.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;

/// One key as the keymap names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key itself.
    pub code: KeyCode,
    /// Whether Ctrl must be held.
    pub ctrl: bool,
}

/// One row of a keymap table.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// The keys that trigger the action.
    pub keys: &'static [Key],
    /// How the help overlay writes those keys.
    pub label: &'static str,
    /// What the keys do.
    pub action: Action,
    /// The help text when it differs from `Action::describe` in this context.
    pub help: Option<&'static str>,
    /// The footer hint (keys, word), for the bindings worth a place there.
    pub hint: Option<(&'static str, &'static str)>,
}

impl Binding {
    /// The help text of this binding.
    pub fn description(&self) -> &'static str {
        self.help.unwrap_or_else(|| self.action.describe())
    }
}

/// Which table applies to a key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyContext {
    /// The table, details, log and help views.
    Normal,
    /// Typing a name filter: most keys are text.
    Filter,
    /// A yes/no question is open.
    Confirm,
}

const fn ch(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: false,
    }
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

const fn bind(
    keys: &'static [Key],
    label: &'static str,
    action: Action,
    hint: Option<(&'static str, &'static str)>,
) -> Binding {
    Binding {
        keys,
        label,
        action,
        help: None,
        hint,
    }
}

/// The keys of the table, details, log and help views.
pub const NORMAL: &[Binding] = &[
    bind(
        &[ch('j'), code(KeyCode::Down)],
        "j ↓",
        Action::MoveDown,
        Some(("j/k", "move")),
    ),
    bind(&[ch('k'), code(KeyCode::Up)], "k ↑", Action::MoveUp, None),
    bind(
        &[code(KeyCode::PageDown), ctrl('d')],
        "PgDn ^D",
        Action::PageDown,
        None,
    ),
    bind(
        &[code(KeyCode::PageUp), ctrl('u')],
        "PgUp ^U",
        Action::PageUp,
        None,
    ),
    bind(&[ch('g'), code(KeyCode::Home)], "g Home", Action::Top, None),
    bind(
        &[ch('G'), code(KeyCode::End)],
        "G End",
        Action::Bottom,
        None,
    ),
    bind(
        &[code(KeyCode::Enter)],
        "Enter",
        Action::Open,
        Some(("⏎", "details")),
    ),
    bind(
        &[code(KeyCode::Esc)],
        "Esc",
        Action::Back,
        Some(("Esc", "back")),
    ),
    bind(&[ch('r')], "r", Action::Reload, Some(("r", "reload"))),
    bind(&[ch('a')], "a", Action::Activate, Some(("a", "activate"))),
    bind(&[ch('c')], "c", Action::Cancel, Some(("c", "cancel"))),
    bind(&[ch('t')], "t", Action::Trigger, Some(("t", "trigger"))),
    bind(&[ch('l')], "l", Action::Logs, Some(("l", "log"))),
    bind(&[ch('/')], "/", Action::StartFilter, Some(("/", "filter"))),
    bind(
        &[ch('f')],
        "f",
        Action::CycleStatusFilter,
        Some(("f", "status")),
    ),
    bind(&[ch('s')], "s", Action::CycleSort, Some(("s", "sort"))),
    bind(&[ch('?')], "?", Action::Help, Some(("?", "help"))),
    bind(
        &[ch('q'), ctrl('c')],
        "q ^C",
        Action::Quit,
        Some(("q", "quit")),
    ),
];

/// The keys while a name filter is being typed; other printable keys are text.
pub const FILTER: &[Binding] = &[
    Binding {
        keys: &[code(KeyCode::Enter)],
        label: "Enter",
        action: Action::FilterAccept,
        help: None,
        hint: Some(("Enter", "keep")),
    },
    Binding {
        keys: &[code(KeyCode::Esc)],
        label: "Esc",
        action: Action::Back,
        help: Some("clear the filter"),
        hint: Some(("Esc", "clear")),
    },
    Binding {
        keys: &[code(KeyCode::Backspace)],
        label: "Backspace",
        action: Action::FilterBackspace,
        help: None,
        hint: None,
    },
    Binding {
        keys: &[code(KeyCode::Down)],
        label: "↓",
        action: Action::MoveDown,
        help: None,
        hint: None,
    },
    Binding {
        keys: &[code(KeyCode::Up)],
        label: "↑",
        action: Action::MoveUp,
        help: None,
        hint: None,
    },
    Binding {
        keys: &[ctrl('c')],
        label: "^C",
        action: Action::Quit,
        help: None,
        hint: None,
    },
];

/// The keys while a yes/no question is open.
pub const CONFIRM: &[Binding] = &[
    bind(
        &[ch('y'), ch('Y')],
        "y",
        Action::Confirm,
        Some(("y", "yes")),
    ),
    bind(
        &[ch('n'), ch('N'), code(KeyCode::Esc)],
        "n Esc",
        Action::Dismiss,
        Some(("n", "no")),
    ),
    bind(&[ctrl('c')], "^C", Action::Quit, None),
];

/// The table for a context.
pub fn table(context: KeyContext) -> &'static [Binding] {
    match context {
        KeyContext::Normal => NORMAL,
        KeyContext::Filter => FILTER,
        KeyContext::Confirm => CONFIRM,
    }
}

/// The help overlay's sections: a title and the table it lists.
pub const SECTIONS: [(&str, KeyContext); 3] = [
    ("Keys", KeyContext::Normal),
    (
        "While typing a filter (other keys are text)",
        KeyContext::Filter,
    ),
    ("When asked a question", KeyContext::Confirm),
];

/// The action for a key press in a context, if the key means anything there.
pub fn action_for(context: KeyContext, key: KeyEvent) -> Option<Action> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    // Alt-combinations are the terminal's or the multiplexer's, never ours.
    if key.modifiers.contains(KeyModifiers::ALT) {
        return None;
    }
    let found = table(context)
        .iter()
        .find(|binding| {
            binding
                .keys
                .iter()
                .any(|k| k.ctrl == ctrl && k.code == key.code)
        })
        .map(|binding| binding.action);
    if found.is_some() {
        return found;
    }
    match (context, key.code) {
        (KeyContext::Filter, KeyCode::Char(c)) if !ctrl => Some(Action::FilterInput(c)),
        _ => None,
    }
}

/// The footer hints of a context: `(keys, word)` pairs in table order.
pub fn hints(context: KeyContext) -> impl Iterator<Item = (&'static str, &'static str)> {
    table(context).iter().filter_map(|binding| binding.hint)
}
