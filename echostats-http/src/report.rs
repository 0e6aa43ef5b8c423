//! The terminal report: totals, top lists and an hour-of-day bar chart.

use echostats::analytics::{Overview, TopEntry};
use std::fmt::Write;

fn hm(ms: i64) -> String {
    let minutes = ms / 60_000;
    format!("{}h {:02}m", minutes / 60, minutes % 60)
}

fn top_list(out: &mut String, title: &str, items: &[TopEntry]) {
    let _ = writeln!(out, "\n{title}");
    if items.is_empty() {
        let _ = writeln!(out, "  (nothing yet)");
    }
    for t in items {
        let name = match &t.artist_name {
            Some(a) => format!("{} — {a}", t.name),
            None => t.name.clone(),
        };
        let _ = writeln!(
            out,
            "  {:>2}. {:<52} {:>6} plays {:>10}",
            t.rank,
            truncate(&name, 52),
            t.play_count,
            hm(t.total_ms)
        );
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn bar(value: i64, max: i64, width: usize) -> String {
    if max <= 0 {
        return String::new();
    }
    let eighths = (value as f64 / max as f64 * width as f64 * 8.0).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        s.push(['▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8 - 1]);
    }
    s
}

/// Renders the overview (and top podcast shows) as text.
pub fn render(o: &Overview, shows: &[TopEntry]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "EchoStats — {} (times in {})", o.period.as_str().replace('_', " "), o.timezone);
    let _ = writeln!(out, "{}", "=".repeat(60));
    let _ = writeln!(out, "Plays           {:>10}", o.total_tracks_played);
    let _ = writeln!(out, "Listening time  {:>10}  ({} h)", hm(o.total_ms_played), o.total_hours);
    let _ = writeln!(out, "Tracks          {:>10}", o.unique_tracks);
    let _ = writeln!(out, "Artists         {:>10}", o.unique_artists);
    let _ = writeln!(out, "Albums          {:>10}", o.unique_albums);
    if o.unique_genres > 0 {
        let _ = writeln!(out, "Genres          {:>10}", o.unique_genres);
    }
    let _ = writeln!(out, "Longest streak  {:>10} days", o.listening_streak_days);
    let _ = writeln!(out, "Current streak  {:>10} days", o.current_streak_days);
    top_list(&mut out, "Top artists", &o.top_artists);
    top_list(&mut out, "Top tracks", &o.top_tracks);
    top_list(&mut out, "Top albums", &o.top_albums);
    if !o.top_genres.is_empty() {
        top_list(&mut out, "Top genres", &o.top_genres);
    }
    if !shows.is_empty() {
        let _ = writeln!(out, "\nTop podcasts (by listening time)");
        for s in shows {
            let _ = writeln!(out, "  {:>2}. {:<52} {:>10}", s.rank, truncate(&s.name, 52), hm(s.total_ms));
        }
    }
    let max = o.hourly_distribution.iter().map(|h| h.plays).max().unwrap_or(0);
    let _ = writeln!(out, "\nPlays by hour of day");
    for h in &o.hourly_distribution {
        let _ = writeln!(out, "  {:02}:00 {:>6} {}", h.hour, h.plays, bar(h.plays, max, 40));
    }
    let max = o.daily_distribution.iter().map(|d| d.plays).max().unwrap_or(0);
    let _ = writeln!(out, "\nPlays by weekday");
    for d in &o.daily_distribution {
        let _ = writeln!(out, "  {:<9} {:>6} {}", d.day, d.plays, bar(d.plays, max, 40));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_maximum() {
        assert_eq!(bar(10, 10, 4), "████");
        assert_eq!(bar(0, 10, 4), "");
        assert_eq!(bar(5, 10, 4), "██");
        assert_eq!(bar(1, 0, 4), "");
    }
}
