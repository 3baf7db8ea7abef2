//! The frame every page shares: head, navigation, the stylesheet, and the live-refresh script.

use maud::{DOCTYPE, Markup, PreEscaped, html};

/// The stylesheet, embedded; served at `/ui/style.css` and inlined into static boards.
pub const STYLE: &str = include_str!("style.css");
/// The refresh script, embedded; served at `/ui/live.js`.
pub const LIVE_JS: &str = include_str!("live.js");

/// How the page gets its stylesheet and whether it refreshes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Served by `trunkwarden serve`: linked stylesheet (the CSP forbids inline styles), live.
    Served,
    /// A file on disk: everything inline, nothing to refresh.
    Static,
}

/// A whole page around `main`.
pub fn page(title: &str, frame: Frame, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · trunkwarden" }
                @match frame {
                    Frame::Served => {
                        link rel="stylesheet" href="/ui/style.css";
                        script src="/ui/live.js" defer {}
                    }
                    // A static file may carry its style inline: no server, no CSP to honour.
                    Frame::Static => { style { (PreEscaped(STYLE)) } }
                }
            }
            body {
                header.top {
                    a.brand href=(if frame == Frame::Served { "/" } else { "#" }) { "trunkwarden" }
                    @if frame == Frame::Served {
                        nav {
                            a href="/" { "Overview" }
                            a href="/deliveries" { "Deliveries" }
                        }
                        span.live id="live" data-state="idle" title="Refreshes when the bot processes a delivery" { "live" }
                    }
                }
                main id="main" { (main) }
            }
        }
    }
}

/// A span of milliseconds as people say it: `40 s`, `12 min`, `3 h`, `2 d`.
pub fn ago(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(ago(-5), "0 s");
        assert_eq!(ago(59_000), "59 s");
        assert_eq!(ago(125_000), "2 min");
        assert_eq!(ago(7_300_000), "2 h");
        assert_eq!(ago(3 * 86_400_000), "3 d");
    }
}
