//! Cluster files: the samples load, and each mistake is reported with its file, line and column.

use std::path::{Path, PathBuf};

use glam::Vec3;
use lockstep_display::{ClusterConfig, ColorMask, Eye, StereoMode};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(name)
}

#[test]
fn the_cave_sample_has_four_walls_and_nodes() {
    let c = ClusterConfig::load(&sample("cave.toml")).unwrap();
    assert_eq!(c.name, "cave");
    let names: Vec<_> = c.screens.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["left", "front", "right", "floor"]);
    assert_eq!(c.nodes.len(), 4);
    assert_eq!(c.head.position, Vec3::new(0.0, 1.7, 0.0));
    assert!(c.key_file.as_ref().unwrap().ends_with("configs/cave.key"));
    for s in &c.screens {
        assert!((s.width() - 3.0).abs() < 1e-6 && (s.height() - 3.0).abs() < 1e-6);
        // Every wall faces the centre of the cube.
        assert!(
            s.normal().dot(Vec3::new(0.0, 1.5, 0.0) - s.center()) > 0.0,
            "{}",
            s.name
        );
    }
    let views = c.views("front").unwrap();
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].file_stem(), "front-main-wall");
}

#[test]
fn the_wall_sample_expands_into_tiles_with_bezel_gaps() {
    let c = ClusterConfig::load(&sample("wall-3x2.toml")).unwrap();
    assert_eq!(c.screens.len(), 6);
    let a = c.screen("wall-r0c0").unwrap();
    let b = c.screen("wall-r0c1").unwrap();
    let below = c.screen("wall-r1c0").unwrap();
    // Images 1.2 m wide, separated by two 5 mm bezels; row 0 is the top row.
    assert!((b.lower_left.x - a.lower_right.x - 0.01).abs() < 1e-5);
    assert!((a.lower_left.y - below.upper_left.y - 0.01).abs() < 1e-5);
    assert!((a.lower_left.x - (-1.815 + 0.005)).abs() < 1e-5);
    assert!((below.lower_left.y - (0.6 + 0.005)).abs() < 1e-5);
}

#[test]
fn the_stereo_sample_renders_one_eye_per_node() {
    let c = ClusterConfig::load(&sample("stereo.toml")).unwrap();
    assert_eq!(c.stereo.mode, StereoMode::Passive);
    let l = &c.views("front-left").unwrap()[0];
    let r = &c.views("front-right").unwrap()[0];
    assert_eq!((l.eye, r.eye), (Eye::Left, Eye::Right));
    assert!((r.eye_position - l.eye_position).abs_diff_eq(Vec3::new(0.064, 0.0, 0.0), 1e-6));
    assert_eq!(l.file_stem(), "front-left-main-wall-left");
}

const BASE: &str = r#"name = "t"
[master]
host = "127.0.0.1"
port = 7000
[[screens]]
name = "front"
lower_left = [-1.0, 0.0, -2.0]
lower_right = [1.0, 0.0, -2.0]
upper_left = [-1.0, 2.0, -2.0]
"#;

fn node(name: &str, port: u16, screen: &str, extra_viewport: &str) -> String {
    format!(
        "[[nodes]]\nname = \"{name}\"\nhost = \"127.0.0.1\"\nport = {port}\n[[nodes.windows]]\nname = \"w\"\nsize = [320, 200]\n[[nodes.windows.viewports]]\nname = \"v\"\nscreen = \"{screen}\"\n{extra_viewport}"
    )
}

/// Parses `text`; expects exactly the errors given as (line, part of the message).
fn assert_errors(text: &str, expected: &[(usize, &str)]) {
    let err = ClusterConfig::parse(Path::new("test.toml"), text).expect_err("must be refused");
    let got: Vec<(usize, String)> = err.0.iter().map(|e| (e.line, e.message.clone())).collect();
    assert_eq!(got.len(), expected.len(), "{err}");
    for ((line, msg), (want_line, want)) in got.iter().zip(expected) {
        assert_eq!(line, want_line, "{msg}");
        assert!(msg.contains(want), "'{msg}' lacks '{want}'");
    }
    // The rendered form is compiler-like.
    let first = err.to_string();
    assert!(
        first.starts_with(&format!("test.toml:{}:", expected[0].0)),
        "{first}"
    );
}

#[test]
fn a_valid_base_file_loads() {
    let text = format!("{BASE}{}", node("a", 7001, "front", ""));
    let c = ClusterConfig::parse(Path::new("t.toml"), &text).unwrap();
    assert_eq!(c.nodes[0].windows[0].viewports[0].rect, [0, 0, 320, 200]);
}

#[test]
fn an_unknown_key_names_its_line_and_column() {
    let text = format!("{BASE}{}colour = \"red\"\n", node("a", 7001, "front", ""));
    let err = ClusterConfig::parse(Path::new("x.toml"), &text).unwrap_err();
    assert_eq!(err.0.len(), 1);
    let e = &err.0[0];
    assert_eq!((e.line, e.column), (20, 1), "{e}");
    assert!(e.message.contains("unknown field `colour`"), "{e}");
}

#[test]
fn duplicate_names_are_refused_at_the_second_use() {
    let text = format!(
        "{BASE}{}{}",
        node("a", 7001, "front", ""),
        node("a", 7002, "front", "")
    );
    assert_errors(
        &text,
        &[(21, "duplicate node name 'a' (first used on line 11)")],
    );
    let text = format!(
        "{BASE}[[screens]]\nname = \"front\"\nlower_left = [0.0, 0.0, 0.0]\nlower_right = [1.0, 0.0, 0.0]\nupper_left = [0.0, 1.0, 0.0]\n"
    );
    assert_errors(
        &text,
        &[(11, "duplicate screen name 'front' (first used on line 6)")],
    );
}

#[test]
fn corners_that_are_not_a_rectangle_are_refused() {
    let text = BASE.replace(
        "upper_left = [-1.0, 2.0, -2.0]",
        "upper_left = [-0.5, 2.0, -2.0]",
    );
    assert_errors(
        &text,
        &[(
            7,
            "screen 'front': the corners are not a rectangle: the edges meet at 75.96° at lower_left",
        )],
    );
}

#[test]
fn a_viewport_naming_a_missing_screen_is_refused() {
    let text = format!("{BASE}{}", node("a", 7001, "frnt", ""));
    assert_errors(
        &text,
        &[(
            19,
            "viewport 'v' shows screen 'frnt', which is not defined (screens: front)",
        )],
    );
}

#[test]
fn a_viewport_outside_its_window_is_refused() {
    let text = format!(
        "{BASE}{}",
        node("a", 7001, "front", "rect = [100, 0, 221, 200]\n")
    );
    assert_errors(
        &text,
        &[(
            20,
            "viewport 'v' [100, 0, 221, 200] reaches past its 320x200 window 'w'",
        )],
    );
}

#[test]
fn two_nodes_on_one_host_and_port_are_refused() {
    let text = format!(
        "{BASE}{}{}",
        node("a", 7001, "front", ""),
        node("b", 7001, "front", "")
    );
    assert_errors(
        &text,
        &[(
            23,
            "node 'b' uses 127.0.0.1:7001, as node 'a' does (line 12)",
        )],
    );
    let text = format!("{BASE}{}", node("a", 7000, "front", ""));
    assert_errors(
        &text,
        &[(
            13,
            "node 'a' uses 127.0.0.1:7000, as the master does (line 3)",
        )],
    );
}

#[test]
fn several_mistakes_are_reported_together_in_file_order() {
    let text = format!(
        "{BASE}{}{}",
        node("a", 7001, "nope", "rect = [0, 0, 400, 10]\n"),
        node("a", 0, "front", "eye = \"left\"\n")
    );
    assert_errors(
        &text,
        &[
            (19, "screen 'nope', which is not defined"),
            (20, "reaches past its 320x200 window"),
            (22, "duplicate node name 'a'"),
            (24, "node 'a' has port 0"),
            (31, "eye = \"left\" needs stereo mode \"passive\""),
        ],
    );
}

#[test]
fn corners_facing_away_from_the_head_are_refused() {
    // lower_left and lower_right swapped: the screen's front faces away from the viewer.
    let text = BASE
        .replace(
            "lower_left = [-1.0, 0.0, -2.0]",
            "lower_left = [1.0, 0.0, -2.0]",
        )
        .replace(
            "lower_right = [1.0, 0.0, -2.0]",
            "lower_right = [-1.0, 0.0, -2.0]",
        )
        .replace(
            "upper_left = [-1.0, 2.0, -2.0]",
            "upper_left = [1.0, 2.0, -2.0]",
        );
    let text = format!("{text}{}", node("a", 7001, "front", ""));
    assert_errors(
        &text,
        &[(19, "is behind or on screen 'front' (defined on line 6)")],
    );
}

#[test]
fn a_malformed_threading_model_is_refused_at_its_line() {
    let text = format!("{BASE}{}", node("a", 7001, "front", "")).replace(
        "port = 7001\n",
        "port = 7001\nthreading_model = \"Cull/Draw/Extra\"\n",
    );
    assert_errors(
        &text,
        &[(14, "threading model 'Cull/Draw/Extra' has 2 '/'")],
    );
}

#[test]
fn bad_values_are_explained() {
    let text = format!("{BASE}[stereo]\nmode = \"interlaced\"\neye_separation = 2.0\n");
    assert_errors(
        &text,
        &[
            (11, "unknown stereo mode 'interlaced'"),
            (12, "eye_separation 2 m is outside 0 to 0.5 m"),
        ],
    );
    let text = format!(
        "{BASE}[[walls]]\nname = \"w\"\nrows = 0\ncolumns = 2\ntile_size = [1.0, -1.0]\nlower_left = [0.0, 0.0, -3.0]\n"
    );
    assert_errors(
        &text,
        &[
            (12, "wall 'w': rows = 0, expected 1 to 64"),
            (14, "tile_size must be positive"),
        ],
    );
    let text = format!("{BASE}[[screens]]\nname = \"p\"\ncamera = {{ fov = [90.0, 200.0] }}\n");
    assert_errors(
        &text,
        &[(12, "fov [90, 200] must lie strictly between 0 and 180")],
    );
    let err = ClusterConfig::load(Path::new("/nonexistent/c.toml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/nonexistent/c.toml: cannot read cluster file: No such file or directory (os error 2)"
    );
}

#[test]
fn stereo_modes_split_viewports_and_masks() {
    let with = |mode: &str| {
        let text = format!(
            "{BASE}[stereo]\nmode = \"{mode}\"\n{}",
            node("a", 7001, "front", "")
        );
        ClusterConfig::parse(Path::new("t.toml"), &text)
            .unwrap()
            .views("a")
            .unwrap()
    };
    let sbs = with("side-by-side");
    assert_eq!(
        sbs.iter().map(|v| (v.eye, v.rect)).collect::<Vec<_>>(),
        [
            (Eye::Left, [0, 0, 160, 200]),
            (Eye::Right, [160, 0, 160, 200])
        ]
    );
    let tb = with("top-bottom");
    assert_eq!(
        tb.iter().map(|v| v.rect).collect::<Vec<_>>(),
        [[0, 0, 320, 100], [0, 100, 320, 100]]
    );
    let ana = with("anaglyph");
    assert_eq!(
        ana.iter().map(|v| (v.eye, v.mask)).collect::<Vec<_>>(),
        [(Eye::Left, ColorMask::Red), (Eye::Right, ColorMask::Cyan)]
    );
    assert_eq!(
        ana[0].file_stem(),
        ana[1].file_stem(),
        "anaglyph eyes share one image"
    );
    assert_eq!(with("mono")[0].eye, Eye::Mono);
}

#[test]
fn numbers_that_are_not_finite_are_refused_where_they_stand() {
    // NaN passes every range check (it compares false) and then draws nothing: refused
    // wherever it stands, with every one reported.
    let text = format!(
        "{BASE}[head]\nposition = [0.0, nan, 0.0]\nhpr = [inf, 0.0, -inf]\n[stereo]\nmode = \"mono\"\neye_separation = 1e39\n{}",
        node("a", 7001, "front", "")
    );
    let err = ClusterConfig::parse(Path::new("test.toml"), &text).expect_err("refused");
    let got: Vec<String> = err.0.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        got,
        [
            "test.toml:11:18: nan is not a usable number: every number must be finite and fit in 32 bits",
            "test.toml:12:8: inf is not a usable number: every number must be finite and fit in 32 bits",
            "test.toml:12:18: -inf is not a usable number: every number must be finite and fit in 32 bits",
            "test.toml:15:18: 1e39 is not a usable number: every number must be finite and fit in 32 bits",
        ],
        "{err}"
    );
    // In a Panda camera too, whose fields have no position of their own.
    let text = format!(
        "{BASE}[[screens]]\nname = \"p\"\ncamera = {{ fov = [90.0, 60.0], hpr = [nan, 0.0, 0.0] }}\n"
    );
    assert_errors(&text, &[(12, "nan is not a usable number")]);
}

#[test]
fn names_that_could_leave_a_folder_or_break_a_line_are_refused() {
    // Names become file names (`render --out DIR` writes NODE-WINDOW-VIEWPORT.png).
    let text = format!(
        "{BASE}{}",
        node("a", 7001, "front", "").replace("name = \"v\"", "name = \"v/../../escaped\"")
    );
    assert_errors(
        &text,
        &[(
            18,
            "viewport name \"v/../../escaped\" must be 1 to 64 letters, digits, '-', '_' or '.' (not first)",
        )],
    );
    for (bad, line, what) in [
        ("..", 11, "node"),
        ("a\\\\b", 11, "node"),
        ("tab\\there", 11, "node"),
        ("", 11, "node"),
    ] {
        let text = format!("{BASE}{}", node(bad, 7001, "front", ""));
        let want = if bad.is_empty() {
            format!("{what} name must not be empty")
        } else {
            format!("{what} name ")
        };
        assert_errors(&text, &[(line, &want)]);
    }
    let text = format!(
        "{BASE}{}",
        node("a", 7001, "front", "").replace("name = \"w\"", "name = \"../w\"")
    );
    assert_errors(&text, &[(15, "window name \"../w\" must be")]);
    let text = BASE.replace("name = \"front\"", "name = \"front/left\"")
        + &node("a", 7001, "front/left", "");
    assert_errors(&text, &[(6, "screen name \"front/left\" must be")]);
    let text = BASE.replace("name = \"t\"", "name = \"t/../x\"") + &node("a", 7001, "front", "");
    assert_errors(&text, &[(1, "cluster name \"t/../x\" must be")]);
}

#[test]
fn launch_files_must_be_on_this_host() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("models")).unwrap();
    std::fs::write(dir.path().join("models/room.glb"), b"glb").unwrap();
    let file = dir.path().join("c.toml");
    let text = format!(
        "{BASE}[launch]\nfiles = [\"models/room.glb\", \"models/gone.glb\", \"models\"]\n{}",
        node("a", 7001, "front", "")
    );
    let err = ClusterConfig::parse(&file, &text).expect_err("refused");
    let got: Vec<String> = err.0.iter().map(|e| e.message.clone()).collect();
    let gone = dir.path().join("models/gone.glb");
    assert_eq!(
        got,
        [
            format!(
                "launch file 'models/gone.glb' is not on this host: {}: No such file or directory (os error 2)",
                gone.display()
            ),
            format!(
                "launch file 'models': {} is not a file",
                dir.path().join("models").display()
            ),
        ]
    );
    assert_eq!((err.0[0].line, err.0[0].column), (11, 29));
}

#[test]
fn a_launch_names_an_absolute_program_or_a_scene_which_is_shipped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("room.glb"), b"glb").unwrap();
    let file = dir.path().join("c.toml");
    let with = |launch: &str| format!("{BASE}[launch]\n{launch}\n{}", node("a", 7001, "front", ""));
    let c = ClusterConfig::parse(&file, &with("scene = \"room.glb\"")).unwrap();
    assert_eq!(c.launch.scene.as_deref(), Some("room.glb"));
    assert_eq!(c.launch.files, ["room.glb"]);
    let c = ClusterConfig::parse(&file, &with("program = \"/opt/cave/app\"")).unwrap();
    assert_eq!(c.launch.program.as_deref(), Some("/opt/cave/app"));
    let messages = |text: &str| -> Vec<String> {
        let err = ClusterConfig::parse(&file, text).expect_err("refused");
        err.0.iter().map(|e| e.message.clone()).collect()
    };
    assert_eq!(
        messages(&with("program = \"bin/app\"\nscene = \"room.glb\"")),
        [
            "launch.program 'bin/app' must be an absolute path (the daemons' programs list names it)",
            "launch.scene is for the built-in viewer; an application of its own (launch.program) loads what it likes: set one of them",
        ]
    );
}

#[test]
fn assets_are_not_sent_unless_the_file_says_so_and_the_cache_stays_below_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    let with = |assets: &str| format!("{BASE}[assets]\n{assets}\n{}", node("a", 7001, "front", ""));
    let c =
        ClusterConfig::parse(&file, &format!("{BASE}{}", node("a", 7001, "front", ""))).unwrap();
    assert!(!c.assets.send);
    assert_eq!(
        c.assets.max_file_bytes,
        lockstep_display::DEFAULT_MAX_ASSET_MB << 20
    );
    assert_eq!(c.assets.cache, dir.path().join(".lockstep-assets"));
    let c = ClusterConfig::parse(
        &file,
        &with("send = true\nmax_file_mb = 2\ncache = \"cache/models\""),
    )
    .unwrap();
    assert!(c.assets.send);
    assert_eq!(c.assets.max_file_bytes, 2 << 20);
    assert_eq!(c.assets.cache, dir.path().join("cache/models"));
    let err = ClusterConfig::parse(&file, &with("max_file_mb = 0\ncache = \"../elsewhere\""))
        .expect_err("refused");
    let got: Vec<String> = err.0.iter().map(|e| e.message.clone()).collect();
    assert_eq!(
        got,
        [
            "assets.max_file_mb is 0: choose 1 to 1048576",
            "assets.cache '../elsewhere' must be a folder below the cluster file's folder (no '..', not absolute)",
        ]
    );
    assert_eq!((err.0[0].line, err.0[0].column), (11, 15));
}

#[test]
fn input_devices_and_the_head_tracker_are_checked_where_they_stand() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    let input = |body: &str| format!("{BASE}{}{body}", node("a", 7001, "front", ""));
    let c = ClusterConfig::parse(
        &file,
        &input("[[input]]\nname = \"art\"\ndevice = \"vrpn\"\naddress = \"DTrack@10.0.0.9:3883\"\nhost = \"a\"\naxes = [\"x\", \"z\", \"-y\"]\nscale = 0.001\n[[input]]\nname = \"pads\"\ndevice = \"gamepad\"\n"),
    )
    .unwrap();
    assert_eq!(c.input.len(), 2);
    assert_eq!(
        c.input[0].host,
        lockstep_display::DeviceHost::Node("a".into())
    );
    assert_eq!(c.input[1].host, lockstep_display::DeviceHost::Master);
    assert_eq!(c.input[0].remap.scale, 0.001);
    // A scripted gamepad's script is found beside the cluster file.
    let c = ClusterConfig::parse(
        &file,
        &input("[[input]]\nname = \"pads\"\ndevice = \"gamepad\"\nscript = \"tour.pad\"\n"),
    )
    .unwrap();
    assert_eq!(
        c.input[0].kind,
        lockstep_display::DeviceKind::Gamepad {
            script: Some(dir.path().join("tour.pad"))
        }
    );
    let messages = |text: &str| -> Vec<String> {
        let err = ClusterConfig::parse(&file, text).expect_err("refused");
        err.0.iter().map(|e| e.message.clone()).collect()
    };
    assert_eq!(
        messages(&input(
            "[[input]]\nname = \"art\"\ndevice = \"vrpn\"\naddress = \"DTrack@host:0\"\nhost = \"b\"\naxes = [\"x\", \"x\", \"y\"]\nscale = 0\n[[input]]\nname = \"pad\"\ndevice = \"joystick\"\n"
        )),
        [
            "input 'art': address 'DTrack@host:0' is not DEVICE@HOST[:PORT] (as in Tracker0@localhost)",
            "input 'art': host 'b' is neither master nor a node (nodes: a)",
            "input 'art': axes [\"x\", \"x\", \"y\"] name the tracker's x twice",
            "input 'art': scale 0 must be above 0 (tracker units to metres)",
            "input 'pad': device 'joystick' is not vrpn or gamepad",
        ]
    );
    assert_eq!(
        messages(&input(
            "[[input]]\nname = \"art\"\ndevice = \"vrpn\"\naddress = \"DTrack@h\"\nscript = \"walk.txt\"\n"
        )),
        ["input 'art': only a gamepad plays a script (a tracker's is `lockstep vrpn serve PATH`)"]
    );
    let text = format!(
        "{BASE}{}[head]\nposition = [0.0, 1.7, 0.0]\ntracker = \"pads\"\n[[input]]\nname = \"pads\"\ndevice = \"gamepad\"\n",
        node("a", 7001, "front", "")
    );
    assert_eq!(
        messages(&text),
        ["head.tracker 'pads' is no vrpn [[input]] (vrpn inputs: none)"]
    );
    // Late latching: on by default for a tracker the master reads, off for a node's, and
    // asked for there or without a tracker, refused.
    let head = |head: &str, host: &str| {
        format!(
            "{BASE}{}[head]\nposition = [0.0, 1.7, 0.0]\n{head}\n[[input]]\nname = \"art\"\ndevice = \"vrpn\"\naddress = \"DTrack@h\"\n{host}\n",
            node("a", 7001, "front", "")
        )
    };
    let latch = |text: &str| {
        ClusterConfig::parse(&file, text)
            .unwrap()
            .head_tracker
            .map(|t| t.latch)
    };
    assert_eq!(latch(&head("tracker = \"art\"", "")), Some(true));
    assert_eq!(
        latch(&head("tracker = \"art\"\nlatch = false", "")),
        Some(false)
    );
    assert_eq!(
        latch(&head("tracker = \"art\"", "host = \"a\"")),
        Some(false)
    );
    assert_eq!(
        messages(&head("tracker = \"art\"\nlatch = true", "host = \"a\"")),
        [
            "head.latch: the head's tracker is read on node 'a', but only the master can latch a pose as it releases a swap"
        ]
    );
    assert_eq!(
        messages(&head("latch = true", "")),
        ["head.latch needs head.tracker: only a tracked head is latched"]
    );
}

#[test]
fn the_transport_is_tcp_unless_multicast_is_asked_for_and_each_value_is_checked() {
    use lockstep_display::{MulticastConfig, Transport};
    use std::net::Ipv4Addr;
    let body = format!("{BASE}{}", node("a", 7001, "front", ""));
    let c = ClusterConfig::parse(Path::new("t.toml"), &body).unwrap();
    assert_eq!(c.transport, Transport::Tcp);
    let c = ClusterConfig::parse(
        Path::new("t.toml"),
        &format!("transport = \"multicast\"\n{body}"),
    )
    .unwrap();
    assert_eq!(
        c.transport,
        Transport::Multicast(MulticastConfig {
            group: lockstep_display::DEFAULT_GROUP,
            port: lockstep_display::DEFAULT_MULTICAST_PORT,
            ttl: 1,
            interface: None,
        })
    );
    let c = ClusterConfig::parse(
        Path::new("t.toml"),
        &format!("transport = \"multicast\"\n{body}[multicast]\ngroup = \"239.1.2.3\"\nport = 9000\nttl = 4\ninterface = \"10.0.0.1\"\n"),
    )
    .unwrap();
    assert_eq!(
        c.transport,
        Transport::Multicast(MulticastConfig {
            group: Ipv4Addr::new(239, 1, 2, 3),
            port: 9000,
            ttl: 4,
            interface: Some(Ipv4Addr::new(10, 0, 0, 1)),
        })
    );
    assert_errors(
        &format!("transport = \"udp\"\n{body}"),
        &[(
            1,
            "unknown transport 'udp': expected \"tcp\" or \"multicast\"",
        )],
    );
    let lines = body.lines().count();
    assert_errors(
        &format!("{body}[multicast]\ngroup = \"239.1.2.3\"\n"),
        &[(lines + 1, "a [multicast] table, but transport is \"tcp\"")],
    );
    assert_errors(
        &format!(
            "transport = \"multicast\"\n{body}[multicast]\ngroup = \"10.1.2.3\"\nport = 0\nttl = 300\ninterface = \"eth0\"\n"
        ),
        &[
            (
                lines + 3,
                "multicast.group 10.1.2.3 is not a multicast address",
            ),
            (lines + 4, "multicast.port is 0: choose 1 to 65535"),
            (lines + 5, "multicast.ttl is 300: choose 1 to 255"),
            (
                lines + 6,
                "multicast.interface 'eth0' is not the IPv4 address of an interface",
            ),
        ],
    );
}

/// The 1-based line of the `nth` (from 0) line holding `needle`.
fn line_with(text: &str, needle: &str, nth: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(nth)
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("no line {nth} with {needle}"))
}

#[test]
fn a_viewport_names_its_helpers_and_each_view_carries_them() {
    let text = format!(
        "{BASE}{}{}{}",
        node("wall", 7001, "front", "helpers = [\"h1\", \"h2\"]\n"),
        node("h1", 7002, "front", ""),
        node("h2", 7003, "front", "")
    );
    let c = ClusterConfig::parse(Path::new("t.toml"), &text).unwrap();
    assert_eq!(c.nodes[0].windows[0].viewports[0].helpers, ["h1", "h2"]);
    assert!(c.nodes[1].windows[0].viewports[0].helpers.is_empty());
    let views = c.views("wall").unwrap();
    assert_eq!(views[0].helpers, ["h1", "h2"]);
    let names =
        |n: &str| -> Vec<String> { c.helped_by(n).iter().map(|d| d.name.clone()).collect() };
    assert_eq!(names("h1"), ["wall"]);
    assert!(names("wall").is_empty());
}

#[test]
fn helpers_that_are_not_other_nodes_or_are_listed_twice_are_refused() {
    // A second viewport for the wall node, in the same window.
    let second = "[[nodes.windows.viewports]]\nname = \"v2\"\nscreen = \"front\"\nrect = [0, 0, 10, 10]\nhelpers = [\"h1\"]\n";
    let text = format!(
        "{BASE}{}{second}{}",
        node(
            "wall",
            7001,
            "front",
            "helpers = [\"wall\", \"ghost\", \"h1\", \"h1\"]\n"
        ),
        node("h1", 7002, "front", "")
    );
    let at = line_with(&text, "helpers", 0);
    let again = line_with(&text, "helpers", 1);
    assert_errors(
        &text,
        &[
            (at, "names 'wall' as its own helper"),
            (at, "helper 'ghost' is not a node of this file (nodes: h1)"),
            (at, &format!("names helper 'h1' twice (first on line {at})")),
            (
                again,
                &format!(
                    "helper 'h1' is listed for viewports 'v' (line {at}) and 'v2' of node 'wall'"
                ),
            ),
        ],
    );
}

#[test]
fn two_nodes_helping_each_other_are_refused() {
    let text = format!(
        "{BASE}{}{}",
        node("a", 7001, "front", "helpers = [\"b\"]\n"),
        node("b", 7002, "front", "helpers = [\"a\"]\n")
    );
    let first = line_with(&text, "helpers", 0);
    let second = line_with(&text, "helpers", 1);
    assert_errors(
        &text,
        &[(
            second,
            &format!("nodes 'b' and 'a' help each other (also on line {first})"),
        )],
    );
}

#[test]
fn more_helpers_than_the_limit_are_refused() {
    let names: Vec<String> = (0..=lockstep_display::MAX_HELPERS)
        .map(|i| format!("h{i}"))
        .collect();
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let mut text = format!(
        "{BASE}{}",
        node(
            "wall",
            7001,
            "front",
            &format!("helpers = [{}]\n", list.join(", "))
        )
    );
    for (i, n) in names.iter().enumerate() {
        text += &node(n, 7100 + i as u16, "front", "");
    }
    assert_errors(
        &text,
        &[(
            line_with(&text, "helpers", 0),
            &format!(
                "names {} helpers: at most {}",
                names.len(),
                lockstep_display::MAX_HELPERS
            ),
        )],
    );
}

#[test]
fn a_ring_of_helpers_and_helpers_under_stereo_that_shares_a_viewport_are_refused() {
    let text = format!(
        "{BASE}{}{}{}",
        node("a", 7001, "front", "helpers = [\"c\"]\n"),
        node("b", 7002, "front", "helpers = [\"a\"]\n"),
        node("c", 7003, "front", "helpers = [\"b\"]\n")
    );
    let last = line_with(&text, "helpers", 2);
    assert_errors(&text, &[(last, "help each other in a ring")]);
    for mode in ["anaglyph", "side-by-side", "top-bottom"] {
        let text = format!(
            "{BASE}{}{}[stereo]\nmode = \"{mode}\"\n",
            node("wall", 7001, "front", "helpers = [\"h\"]\n"),
            node("h", 7002, "front", "")
        );
        assert_errors(
            &text,
            &[(
                line_with(&text, "helpers", 0),
                &format!("stereo mode {mode} draws both eyes into it"),
            )],
        );
    }
}

#[test]
fn changing_a_viewports_helpers_restarts_the_display_node_and_its_helpers() {
    let file = |helpers: &str| {
        let text = format!(
            "{BASE}{}{}{}",
            node("wall", 7001, "front", helpers),
            node("h1", 7002, "front", ""),
            node("h2", 7003, "front", "")
        );
        ClusterConfig::parse(Path::new("t.toml"), &text).unwrap()
    };
    let before = file("helpers = [\"h1\"]\n");
    let after = file("helpers = [\"h1\", \"h2\"]\n");
    let change = before.change_to(&after).unwrap();
    assert_eq!(change.restarted, ["wall", "h2"]);
    // The same helpers: nothing to restart.
    let change = before.change_to(&file("helpers = [\"h1\"]\n")).unwrap();
    assert!(change.restarted.is_empty(), "{change:?}");
}

#[test]
fn strips_are_sent_raw_or_lz4_and_anything_else_is_refused() {
    let file = |extra: &str| {
        format!(
            "{BASE}{}{}",
            node(
                "wall",
                7001,
                "front",
                &format!("helpers = [\"h\"]\n{extra}")
            ),
            node("h", 7002, "front", "")
        )
    };
    let c = ClusterConfig::parse(Path::new("t.toml"), &file("strips = \"lz4\"\n")).unwrap();
    assert!(c.nodes[0].windows[0].viewports[0].lz4_strips);
    assert!(c.views("wall").unwrap()[0].lz4_strips);
    let c = ClusterConfig::parse(Path::new("t.toml"), &file("")).unwrap();
    assert!(
        !c.nodes[0].windows[0].viewports[0].lz4_strips,
        "raw by default"
    );
    let text = file("strips = \"zip\"\n");
    assert_errors(
        &text,
        &[(
            line_with(&text, "strips", 0),
            "viewport 'v': strips = \"zip\": expected \"raw\" or \"lz4\"",
        )],
    );
}
