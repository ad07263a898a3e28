use super::EntryKey;
use crate::models;
use crate::Result;

pub fn run(path: &str, key: &EntryKey) -> Result<()> {
    let sd = key.load(path)?;
    super::say(format!("format: {}", sd.format()))?;
    super::say(format!(
        "entry: {}",
        match sd.entry() {
            Some(name) => format!("`{name}`"),
            None => "the file itself (a bare state dict)".into(),
        }
    ))?;
    let mut params = 0usize;
    for key in sd.keys() {
        let t = sd.get_any(key)?;
        params += t.numel();
        super::say(format!("{key}\t{:?}", t.shape()))?;
    }
    super::say(format!("{} tensors, {params} values", sd.keys().count()))?;
    match models::infer(&sd) {
        Some((arch, opts)) => {
            let opts: Vec<String> = opts.iter().map(|(k, v)| format!("--opt {k}={v}")).collect();
            let note = if arch == "aff" {
                " (or ms_cam: both have these keys)"
            } else {
                ""
            };
            super::say(format!("architecture: {arch}{note} {}", opts.join(" ")))?;
        }
        None => super::say("architecture: not recognised".to_string())?,
    }
    Ok(())
}
