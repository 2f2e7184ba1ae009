//! Writes the JSON Schema of every event to `docs/events` (or the folder given as argument).

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(shared_events::schema::default_dir);
    shared_events::schema::write_all(&dir)?;
    println!(
        "wrote {} schemas to {}",
        shared_events::EventKind::ALL.len(),
        dir.display()
    );
    Ok(())
}
