/*!
The cluster file as written: serde structs that refuse unknown keys and keep the byte span of
every value that a later check may need to point at.
*/
use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

pub type S<T> = Spanned<T>;

/// Every number of the file that is not finite once read as the `f32` every value is
/// (`nan`, `inf`, or too large), with its byte offset and as written: such a number would
/// pass every range check (NaN compares false) and then draw nothing. Wherever it stands,
/// so no field can forget the check.
pub fn unusable_numbers(text: &str) -> Vec<(usize, String)> {
    fn walk(v: &Spanned<DeValue<'_>>, out: &mut Vec<(usize, String)>) {
        match v.get_ref() {
            DeValue::Float(f) => {
                let finite = f
                    .as_str()
                    .parse::<f64>()
                    .is_ok_and(|x| (x as f32).is_finite());
                if !finite {
                    out.push((v.span().start, f.as_str().to_string()));
                }
            }
            DeValue::Array(items) => items.iter().for_each(|i| walk(i, out)),
            DeValue::Table(t) => t.iter().for_each(|(_, i)| walk(i, out)),
            DeValue::String(_)
            | DeValue::Integer(_)
            | DeValue::Boolean(_)
            | DeValue::Datetime(_) => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(doc) = DeTable::parse(text) {
        for (_, v) in doc.get_ref().iter() {
            walk(v, &mut out);
        }
    }
    out
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: S<String>,
    pub key_file: Option<S<String>>,
    pub master: RawEndpoint,
    #[serde(default)]
    pub stereo: Option<RawStereo>,
    #[serde(default)]
    pub head: Option<RawHead>,
    #[serde(default)]
    pub screens: Vec<RawScreen>,
    #[serde(default)]
    pub walls: Vec<RawWall>,
    #[serde(default)]
    pub nodes: Vec<RawNode>,
    #[serde(default)]
    pub launch: Option<RawLaunch>,
    #[serde(default)]
    pub assets: Option<RawAssets>,
    #[serde(default)]
    pub input: Vec<RawInput>,
    pub transport: Option<S<String>>,
    pub multicast: Option<S<RawMulticast>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMulticast {
    pub group: Option<S<String>>,
    pub port: Option<S<u16>>,
    pub ttl: Option<S<u32>>,
    pub interface: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    pub name: S<String>,
    pub device: S<String>,
    pub address: Option<S<String>>,
    pub host: Option<S<String>>,
    pub axes: Option<S<[String; 3]>>,
    pub scale: Option<S<f32>>,
    pub position: Option<S<[f32; 3]>>,
    pub hpr: Option<S<[f32; 3]>>,
    pub script: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAssets {
    pub send: Option<S<bool>>,
    pub max_file_mb: Option<S<u64>>,
    pub cache: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLaunch {
    pub daemon_port: Option<S<u16>>,
    #[serde(default)]
    pub files: Vec<S<String>>,
    pub program: Option<S<String>>,
    pub scene: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub host: S<String>,
    pub port: S<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStereo {
    pub mode: S<String>,
    pub eye_separation: Option<S<f32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHead {
    pub position: S<[f32; 3]>,
    pub hpr: Option<S<[f32; 3]>>,
    pub tracker: Option<S<String>>,
    pub sensor: Option<S<u32>>,
    pub latch: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScreen {
    pub name: S<String>,
    pub space: Option<S<String>>,
    pub lower_left: Option<S<[f32; 3]>>,
    pub lower_right: Option<S<[f32; 3]>>,
    pub upper_left: Option<S<[f32; 3]>>,
    pub camera: Option<S<RawCamera>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCamera {
    pub pos: Option<[f32; 3]>,
    pub hpr: Option<[f32; 3]>,
    pub fov: Option<[f32; 2]>,
    pub film_size: Option<[f32; 2]>,
    pub film_offset: Option<[f32; 2]>,
    pub focal_length: Option<f32>,
    pub distance: Option<f32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWall {
    pub name: S<String>,
    pub space: Option<S<String>>,
    pub rows: S<u32>,
    pub columns: S<u32>,
    pub tile_size: S<[f32; 2]>,
    pub bezel: Option<S<[f32; 2]>>,
    pub lower_left: S<[f32; 3]>,
    pub right: Option<S<[f32; 3]>>,
    pub up: Option<S<[f32; 3]>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub name: S<String>,
    pub host: S<String>,
    pub port: S<u16>,
    pub threading_model: Option<S<String>>,
    #[serde(default)]
    pub windows: Vec<RawWindow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    pub name: S<String>,
    pub size: S<[u32; 2]>,
    pub position: Option<[i32; 2]>,
    #[serde(default)]
    pub fullscreen: bool,
    pub monitor: Option<u32>,
    #[serde(default)]
    pub offscreen: Option<S<bool>>,
    #[serde(default)]
    pub viewports: Vec<RawViewport>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawViewport {
    pub name: S<String>,
    pub screen: S<String>,
    pub rect: Option<S<[u32; 4]>>,
    pub eye: Option<S<String>>,
    pub helpers: Option<S<Vec<S<String>>>>,
    pub strips: Option<S<String>>,
}
