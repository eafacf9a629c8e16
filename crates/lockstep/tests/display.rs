//! Display geometry end to end: cluster files written by the tests, rendered through
//! `lockstep render --config`, asserting on pixels.

mod support;

use std::path::{Path, PathBuf};

use lockstep::scene::glam::{Quat, Vec3};
use support::{lockstep, lockstep_without_key};

fn ok(args: &[&str]) -> String {
    let o = lockstep(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn load(path: &Path) -> image::RgbaImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgba8()
}

/// Renders node `node` of `config` (the demo scene, or `scene`) into `out`.
fn render_node(config: &Path, node: &str, out: &Path, scene: Option<&Path>) {
    let mut args = vec![
        "render",
        "--config",
        config.to_str().unwrap(),
        "--node",
        node,
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(s) = scene {
        args.extend_from_slice(&["--scene", s.to_str().unwrap()]);
    }
    ok(&args);
}

/// One node with one window of `w`×`h` showing `screen`.
fn node(name: &str, port: u16, w: u32, h: u32, screen: &str, eye: &str) -> String {
    format!(
        "[[nodes]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\n[[nodes.windows]]\nname = \"main\"\nsize = [{w}, {h}]\n[[nodes.windows.viewports]]\nname = \"v\"\nscreen = \"{screen}\"\n{eye}\n"
    )
}

fn header(stereo: &str, head: Vec3) -> String {
    format!(
        "name = \"t\"\n[master]\nhost = \"127.0.0.1\"\nport = 7000\n[stereo]\nmode = \"{stereo}\"\neye_separation = 0.064\n[head]\nposition = [{}, {}, {}]\n",
        head.x, head.y, head.z
    )
}

fn screen(name: &str, ll: Vec3, lr: Vec3, ul: Vec3) -> String {
    let a = |v: Vec3| format!("[{}, {}, {}]", v.x, v.y, v.z);
    format!(
        "[[screens]]\nname = \"{name}\"\nlower_left = {}\nlower_right = {}\nupper_left = {}\n",
        a(ll),
        a(lr),
        a(ul)
    )
}

/// A glTF file with one unlit box: a unit cube scaled, turned and moved, of one colour.
fn gltf_box(
    dir: &Path,
    name: &str,
    translation: Vec3,
    rotation: Quat,
    scale: Vec3,
    rgb: [f32; 3],
) -> PathBuf {
    let mut bin: Vec<u8> = Vec::new();
    for i in 0..8u32 {
        for axis in 0..3 {
            let v: f32 = if i & (1 << axis) != 0 { 0.5 } else { -0.5 };
            bin.extend_from_slice(&v.to_le_bytes());
        }
    }
    // Two triangles per face, counter-clockwise from outside.
    let faces: [[u16; 4]; 6] = [
        [0, 2, 3, 1],
        [4, 5, 7, 6],
        [0, 1, 5, 4],
        [2, 6, 7, 3],
        [0, 4, 6, 2],
        [1, 3, 7, 5],
    ];
    for f in faces {
        for i in [f[0], f[1], f[2], f[0], f[2], f[3]] {
            bin.extend_from_slice(&i.to_le_bytes());
        }
    }
    std::fs::write(dir.join(format!("{name}.bin")), &bin).unwrap();
    let gltf = format!(
        r#"{{"asset": {{"version": "2.0"}}, "extensionsUsed": ["KHR_materials_unlit"],
  "scenes": [{{"nodes": [0]}}],
  "nodes": [{{"name": "{name}", "mesh": 0, "translation": [{}, {}, {}], "rotation": [{}, {}, {}, {}], "scale": [{}, {}, {}]}}],
  "meshes": [{{"primitives": [{{"attributes": {{"POSITION": 0}}, "indices": 1, "material": 0}}]}}],
  "materials": [{{"pbrMetallicRoughness": {{"baseColorFactor": [{}, {}, {}, 1]}}, "extensions": {{"KHR_materials_unlit": {{}}}}}}],
  "accessors": [
    {{"bufferView": 0, "componentType": 5126, "count": 8, "type": "VEC3", "min": [-0.5, -0.5, -0.5], "max": [0.5, 0.5, 0.5]}},
    {{"bufferView": 1, "componentType": 5123, "count": 36, "type": "SCALAR"}}],
  "bufferViews": [{{"buffer": 0, "byteLength": 96}}, {{"buffer": 0, "byteOffset": 96, "byteLength": 72}}],
  "buffers": [{{"byteLength": 168, "uri": "{name}.bin"}}]}}"#,
        translation.x,
        translation.y,
        translation.z,
        rotation.x,
        rotation.y,
        rotation.z,
        rotation.w,
        scale.x,
        scale.y,
        scale.z,
        rgb[0],
        rgb[1],
        rgb[2]
    );
    let path = dir.join(format!("{name}.gltf"));
    std::fs::write(&path, gltf).unwrap();
    path
}

#[test]
fn tiles_rendered_one_by_one_form_the_picture_of_the_whole_wall() {
    let dir = tempfile::tempdir().unwrap();
    // 3 × 2 tiles of 1.2 × 0.675 m at 160 px/m (192 × 108 px), bezels of 12.5 mm (2 px):
    // 4 px between neighbouring images.
    let (tw, th, bezel) = (192u32, 108u32, 0.0125f32);
    let gap = 4u32;
    let head = Vec3::new(0.0, 1.6, 0.0);
    let mut tiles = header("mono", head);
    tiles += "[[walls]]\nname = \"wall\"\nrows = 2\ncolumns = 3\ntile_size = [1.2, 0.675]\nbezel = [0.0125, 0.0125]\nlower_left = [-1.9, 0.6, -2.5]\n";
    for r in 0..2 {
        for c in 0..3 {
            tiles += &node(
                &format!("t{r}{c}"),
                7001 + r * 3 + c,
                tw,
                th,
                &format!("wall-r{r}c{c}"),
                "",
            );
        }
    }
    // The whole wall: from the first image's left edge to the last one's right edge.
    let ll = Vec3::new(-1.9 + bezel, 0.6 + bezel, -2.5);
    let (width, height) = (3.0 * 1.2 + 2.0 * 2.0 * bezel, 2.0 * 0.675 + 2.0 * bezel);
    let (ww, wh) = (3 * tw + 2 * gap, 2 * th + gap);
    assert_eq!(
        (ww, wh),
        (
            (width * 160.0).round() as u32,
            (height * 160.0).round() as u32
        )
    );
    let mut whole = header("mono", head);
    whole += &screen("whole", ll, ll + Vec3::X * width, ll + Vec3::Y * height);
    whole += &node("whole", 7100, ww, wh, "whole", "");
    let (tiles_cfg, whole_cfg) = (dir.path().join("tiles.toml"), dir.path().join("whole.toml"));
    std::fs::write(&tiles_cfg, tiles).unwrap();
    std::fs::write(&whole_cfg, whole).unwrap();

    let out = dir.path().join("out");
    render_node(&whole_cfg, "whole", &out, None);
    let reference = load(&out.join("whole-main-v.png"));
    let (mut total, mut close) = (0u64, 0u64);
    for r in 0..2u32 {
        for c in 0..3u32 {
            let name = format!("t{r}{c}");
            render_node(&tiles_cfg, &name, &out, None);
            let tile = load(&out.join(format!("{name}-main-v.png")));
            assert_eq!(tile.dimensions(), (tw, th));
            let (ox, oy) = (c * (tw + gap), r * (th + gap));
            for (x, y, p) in tile.enumerate_pixels() {
                let q = reference.get_pixel(ox + x, oy + y);
                total += 1;
                if p.0.iter().zip(q.0).all(|(a, b)| a.abs_diff(b) <= 2) {
                    close += 1;
                }
            }
        }
    }
    let fraction = close as f64 / total as f64;
    assert!(
        fraction >= 0.999,
        "only {:.4}% of {total} pixels match",
        fraction * 100.0
    );
}

#[test]
fn a_line_crossing_from_the_front_to_the_right_wall_stays_continuous() {
    let dir = tempfile::tempdir().unwrap();
    // A thin green bar from in front-left to the right, crossing the plane through the eye and
    // the front/right seam at eye height (1.7 m), so it meets the seam 222 px from the top.
    let (p0, p1) = (Vec3::new(-0.5, 1.2, -2.5), Vec3::new(2.5, 2.2, 0.5));
    let dir_v = (p1 - p0).normalize();
    let bar = gltf_box(
        dir.path(),
        "bar",
        (p0 + p1) * 0.5,
        Quat::from_rotation_arc(Vec3::X, dir_v),
        Vec3::new(p0.distance(p1), 0.05, 0.05),
        [0.0, 1.0, 0.0],
    );
    let cave = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/cave.toml");
    let out = dir.path().join("out");
    render_node(&cave, "front", &out, Some(&bar));
    render_node(&cave, "right", &out, Some(&bar));
    let front = load(&out.join("front-main-wall.png"));
    let right = load(&out.join("right-main-wall.png"));
    let green = |p: &image::Rgba<u8>| p[1] > 200 && p[0] < 80 && p[2] < 80;
    let mean_row = |img: &image::RgbaImage, x: u32| {
        let rows: Vec<u32> = (0..img.height())
            .filter(|y| green(img.get_pixel(x, *y)))
            .collect();
        assert!(!rows.is_empty(), "the bar reaches column {x}");
        rows.iter().sum::<u32>() as f32 / rows.len() as f32
    };
    let (yf, yr) = (mean_row(&front, front.width() - 1), mean_row(&right, 0));
    assert!(
        (yf - yr).abs() <= 1.0,
        "front edge row {yf}, right edge row {yr}"
    );
    let expected = (3.0 - 1.7) / 3.0 * 512.0;
    assert!(
        (yf - expected).abs() < 3.0,
        "meets the seam at row {yf}, expected about {expected}"
    );
}

/// Centroid x, y of pixels matching `pred`.
fn centroid(img: &image::RgbaImage, pred: impl Fn(&image::Rgba<u8>) -> bool) -> (f32, f32) {
    let (mut sx, mut sy, mut n) = (0f64, 0f64, 0f64);
    for (x, y, p) in img.enumerate_pixels() {
        if pred(p) {
            sx += x as f64 + 0.5;
            sy += y as f64 + 0.5;
            n += 1.0;
        }
    }
    assert!(n > 0.0, "nothing matched");
    ((sx / n) as f32, (sy / n) as f32)
}

#[test]
fn an_object_behind_the_screen_shows_the_expected_disparity_between_eyes() {
    let dir = tempfile::tempdir().unwrap();
    // Screen 2 m ahead, 2 m × 1.125 m at 320 px/m; a flat square 4 m ahead. A point at depth
    // D seen through a screen at S with eyes e apart is drawn e·(D − S)/D apart on it:
    // 0.064 · 2 / 4 = 0.032 m = 10.24 px, right eye to the right (uncrossed disparity).
    let head = Vec3::new(0.0, 1.7, 0.0);
    let ll = Vec3::new(-1.0, 1.7 - 0.5625, -2.0);
    let scr = screen("s", ll, ll + Vec3::X * 2.0, ll + Vec3::Y * 1.125);
    let target = gltf_box(
        dir.path(),
        "sq",
        Vec3::new(0.0, 1.7, -4.0),
        Quat::IDENTITY,
        Vec3::new(0.3, 0.3, 0.001),
        [1.0, 1.0, 1.0],
    );
    let expected = 0.064 * (4.0 - 2.0) / 4.0 * 320.0;

    let mut passive = header("passive", head) + &scr;
    passive += &node("l", 7001, 640, 360, "s", "eye = \"left\"");
    passive += &node("r", 7002, 640, 360, "s", "eye = \"right\"");
    let cfg = dir.path().join("passive.toml");
    std::fs::write(&cfg, passive).unwrap();
    let out = dir.path().join("out");
    render_node(&cfg, "l", &out, Some(&target));
    render_node(&cfg, "r", &out, Some(&target));
    let white = |p: &image::Rgba<u8>| p[0] > 200 && p[1] > 200 && p[2] > 200;
    let (xl, yl) = centroid(&load(&out.join("l-main-v-left.png")), white);
    let (xr, yr) = centroid(&load(&out.join("r-main-v-right.png")), white);
    assert!(
        ((xr - xl) - expected).abs() < 0.5,
        "disparity {} px, expected {expected}",
        xr - xl
    );
    assert!((yr - yl).abs() < 0.01);

    // Red-cyan anaglyph: the left eye in red, the right eye in green and blue of one image.
    let mut ana = header("anaglyph", head) + &scr;
    ana += &node("a", 7001, 640, 360, "s", "");
    let cfg = dir.path().join("anaglyph.toml");
    std::fs::write(&cfg, ana).unwrap();
    render_node(&cfg, "a", &out, Some(&target));
    let img = load(&out.join("a-main-v.png"));
    let (xred, _) = centroid(&img, |p| p[0] > 200);
    let (xcyan, _) = centroid(&img, |p| p[1] > 200 && p[2] > 200);
    assert!(
        ((xcyan - xred) - expected).abs() < 0.5,
        "anaglyph disparity {}",
        xcyan - xred
    );
    assert!(
        ((xred - xl).abs()) < 0.01,
        "the red image is the left eye's"
    );
}

#[test]
fn config_check_prints_the_table_and_refuses_bad_files_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let cave = dir.path().join("cave.toml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/cave.toml"),
        &cave,
    )
    .unwrap();
    // Its key_file does not exist yet: refused, pointing at the key_file line, not later in
    // every process.
    let o = lockstep_without_key(&["config", "check", cave.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    let key = dir.path().join("cave.key");
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "error: {}:10:12: cluster key: cannot read {}: No such file or directory (os error 2) (create it with `lockstep key new {}`)",
            cave.display(),
            key.display(),
            key.display()
        )),
        "{err}"
    );
    ok(&["key", "new", key.to_str().unwrap()]);
    let o = lockstep_without_key(&["config", "check", cave.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains(&format!("key: {} (readable)", key.display())),
        "{out}"
    );
    assert!(
        out.contains("frame data: tcp (each node's connection)"),
        "{out}"
    );
    // Frame data by multicast: said so, and a group that is none refused at its line.
    let text = std::fs::read_to_string(&cave).unwrap();
    let lines = text.lines().count();
    let multicast = dir.path().join("multicast.toml");
    std::fs::write(
        &multicast,
        format!(
            "transport = \"multicast\"\n{text}[multicast]\ngroup = \"239.9.9.9\"\nport = 9001\n"
        ),
    )
    .unwrap();
    let o = lockstep(&["config", "check", multicast.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("frame data: multicast to 239.9.9.9:9001 (ttl 1)"),
        "{out}"
    );
    std::fs::write(
        &multicast,
        format!("transport = \"multicast\"\n{text}[multicast]\ngroup = \"10.9.9.9\"\n"),
    )
    .unwrap();
    let o = lockstep(&["config", "check", multicast.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "error: {}:{}:9: multicast.group 10.9.9.9 is not a multicast address",
            multicast.display(),
            lines + 3
        )),
        "{err}"
    );
    // A key too short to be one is refused the same way.
    std::fs::write(&key, "short").unwrap();
    let o = lockstep_without_key(&["config", "check", cave.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(":10:12: cluster key: "), "{err}");
    assert!(err.contains("5 bytes is too short"), "{err}");
    assert!(out.contains("cluster 'cave'"), "{out}");
    assert!(
        out.contains("front  127.0.0.1:7402  Cull/Draw  main    512x512"),
        "{out}"
    );
    assert!(
        out.contains("ok: 4 nodes, 4 windows, 4 viewports, 4 screens"),
        "{out}"
    );

    let bad = dir.path().join("bad.toml");
    let text = header("mono", Vec3::new(0.0, 1.7, 0.0))
        + &screen(
            "s",
            Vec3::new(-1.0, 0.0, -2.0),
            Vec3::new(1.0, 0.0, -2.0),
            Vec3::new(-1.0, 2.0, -2.0),
        )
        + &node("a", 7001, 100, 100, "missing", "")
        + &node("a", 7002, 100, 100, "s", "");
    std::fs::write(&bad, text).unwrap();
    let o = lockstep(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    let p = bad.display();
    assert!(
        err.contains(&format!(
            "error: {p}:24:10: viewport 'v' shows screen 'missing', which is not defined"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{p}:27:8: duplicate node name 'a' (first used on line 16)"
        )),
        "{err}"
    );
}

#[test]
fn config_show_example_and_draw() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["cave", "wall", "stereo"] {
        let text = ok(&["config", "example", name]);
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::write(&file, &text).unwrap();
        let key = dir.path().join(format!("{name}.key"));
        if !key.exists() {
            ok(&["key", "new", key.to_str().unwrap()]);
        }
        assert!(
            ok(&["config", "check", file.to_str().unwrap()]).contains("ok: "),
            "{name}"
        );
    }
    let cave = dir.path().join("cave.toml");
    let show = ok(&["config", "show", cave.to_str().unwrap(), "--node", "right"]);
    assert!(show.contains("right / window main / viewport wall -> screen 'right', mono eye at (0.000, 1.700, 0.000)"), "{show}");
    assert!(
        show.contains("left -0.05000 right 0.05000 bottom -0.05667 top 0.04333"),
        "{show}"
    );
    let o = lockstep(&[
        "config",
        "show",
        cave.to_str().unwrap(),
        "--node",
        "ceiling",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("no node named 'ceiling' (nodes: left, front, right, floor)")
    );

    let png = dir.path().join("layout.png");
    ok(&[
        "config",
        "draw",
        cave.to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
        "--size",
        "800x400",
    ]);
    let img = load(&png);
    assert_eq!(img.dimensions(), (800, 400));
    // Each wall's outline colour is drawn, and the head's red dot.
    for colour in [
        [31u8, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [148, 103, 189],
        [200, 30, 30],
    ] {
        assert!(
            img.pixels().any(|p| p.0[..3] == colour),
            "colour {colour:?} missing"
        );
    }
}

#[test]
fn render_with_a_config_refuses_free_camera_options_and_unknown_nodes() {
    let cave = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/cave.toml");
    let c = cave.to_str().unwrap();
    let o = lockstep(&[
        "render", "--config", c, "--node", "front", "--size", "10x10", "--out", "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used with"));
    let o = lockstep(&["render", "--config", c, "--out", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--node"));
    let o = lockstep(&["render", "--config", c, "--node", "roof", "--out", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no node named 'roof'"));
}

#[test]
fn a_config_whose_names_would_leave_the_output_folder_or_whose_head_is_nan_renders_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a/b/out");
    let wall = || {
        screen(
            "s",
            Vec3::new(-1.0, 0.0, -2.0),
            Vec3::new(1.0, 0.0, -2.0),
            Vec3::new(-1.0, 2.0, -2.0),
        )
    };
    // `render --out DIR` writes NODE-WINDOW-VIEWPORT.png into DIR.
    let escaping = dir.path().join("escaping.toml");
    let text = header("mono", Vec3::new(0.0, 1.7, 0.0))
        + &wall()
        + &node("n", 7001, 32, 32, "s", "").replace("name = \"v\"", "name = \"v/../../escaped\"");
    std::fs::write(&escaping, text).unwrap();
    // A NaN head used to pass the check and render a picture of background only.
    let nan = dir.path().join("nan.toml");
    let text = header("mono", Vec3::new(0.0, 1.7, 0.0)).replace("1.7", "nan")
        + &wall()
        + &node("n", 7001, 32, 32, "s", "");
    std::fs::write(&nan, text).unwrap();
    for (file, want) in [
        (
            &escaping,
            "viewport name \"v/../../escaped\" must be 1 to 64 letters",
        ),
        (&nan, "nan is not a usable number"),
    ] {
        for args in [
            vec!["config", "check", file.to_str().unwrap()],
            vec![
                "render",
                "--config",
                file.to_str().unwrap(),
                "--node",
                "n",
                "--out",
                out.to_str().unwrap(),
            ],
        ] {
            let o = lockstep(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.contains(&file.display().to_string()) && err.contains(want),
                "{err}"
            );
        }
    }
    let written: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    assert_eq!(written, Vec::<PathBuf>::new(), "no picture anywhere");
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
