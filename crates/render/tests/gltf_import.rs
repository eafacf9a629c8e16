//! glTF import: files written by the tests themselves, loaded, checked and rendered.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use glam::{Quat, Vec3};
use lockstep_render::import::{ImportErrorKind, load_gltf};
use lockstep_scene::{NodeContent, Scene};
use serde_json::{Value, json};

/// Packs a JSON document and a binary buffer into a GLB container.
fn glb(doc: &Value, bin: &[u8]) -> Vec<u8> {
    let mut json = serde_json::to_vec(doc).unwrap();
    while !json.len().is_multiple_of(4) {
        json.push(b' ');
    }
    let mut bin = bin.to_vec();
    while !bin.len().is_multiple_of(4) {
        bin.push(0);
    }
    let total = 12 + 8 + json.len() + 8 + bin.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"glTF");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(b"JSON");
    out.extend_from_slice(&json);
    out.extend_from_slice(&(bin.len() as u32).to_le_bytes());
    out.extend_from_slice(b"BIN\0");
    out.extend_from_slice(&bin);
    out
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// A quad facing +Z (two triangles, UV (0,0) top-left) and a 2×2 PNG with four colours.
fn quad_buffers() -> (Vec<u8>, Value, Value, usize) {
    let positions = f32s(&[
        -1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, -1.0, 0.0, -1.0, -1.0, 0.0,
    ]);
    let uvs = f32s(&[0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]);
    let indices: Vec<u8> = [0u16, 3, 2, 0, 2, 1]
        .iter()
        .flat_map(|i| i.to_le_bytes())
        .collect();
    let mut png = Vec::new();
    let img = image::RgbaImage::from_fn(2, 2, |x, y| {
        image::Rgba(match (x, y) {
            (0, 0) => [255, 0, 0, 255],
            (1, 0) => [0, 255, 0, 255],
            (0, 1) => [0, 0, 255, 255],
            _ => [255, 255, 0, 255],
        })
    });
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let mut bin = Vec::new();
    let mut views = Vec::new();
    for part in [&positions, &uvs, &indices, &png] {
        while !bin.len().is_multiple_of(4) {
            bin.push(0);
        }
        views.push(json!({"buffer": 0, "byteOffset": bin.len(), "byteLength": part.len()}));
        bin.extend_from_slice(part);
    }
    let accessors = json!([
        {"bufferView": 0, "componentType": 5126, "count": 4, "type": "VEC3",
         "min": [-1.0, -1.0, 0.0], "max": [1.0, 1.0, 0.0]},
        {"bufferView": 1, "componentType": 5126, "count": 4, "type": "VEC2"},
        {"bufferView": 2, "componentType": 5123, "count": 6, "type": "SCALAR"}
    ]);
    let len = bin.len();
    (bin, Value::Array(views), accessors, len)
}

/// The test model: `root` (x = 1, turned 90° about Y) holding `child` (z = 2, scale 2) with the
/// textured quad, `other` (a matrix moving y = 3) and `twin` sharing the quad's mesh.
fn model_doc(mode: u32) -> (Value, Vec<u8>) {
    let (bin, views, accessors, len) = quad_buffers();
    let s = std::f32::consts::FRAC_1_SQRT_2;
    let doc = json!({
        "asset": {"version": "2.0"},
        "extensionsUsed": ["KHR_materials_unlit"],
        "scene": 0,
        "scenes": [{"nodes": [0, 2, 3]}],
        "nodes": [
            {"name": "root", "translation": [1.0, 0.0, 0.0], "rotation": [0.0, s, 0.0, s], "children": [1]},
            {"name": "child", "translation": [0.0, 0.0, 2.0], "scale": [2.0, 2.0, 2.0], "mesh": 0},
            {"name": "other", "matrix": [1,0,0,0, 0,1,0,0, 0,0,1,0, 0,3,0,1]},
            {"name": "twin", "mesh": 0, "translation": [0.0, -3.0, 0.0]}
        ],
        "meshes": [{"name": "quad", "primitives": [{
            "attributes": {"POSITION": 0, "TEXCOORD_0": 1}, "indices": 2, "material": 0, "mode": mode
        }]}],
        "materials": [{"name": "pic", "pbrMetallicRoughness": {
            "baseColorFactor": [1.0, 1.0, 1.0, 1.0], "baseColorTexture": {"index": 0}},
            "extensions": {"KHR_materials_unlit": {}}}],
        "textures": [{"source": 0, "sampler": 0}],
        "samplers": [{"magFilter": 9728, "minFilter": 9728}],
        "images": [{"name": "four", "bufferView": 3, "mimeType": "image/png"}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len}]
    });
    (doc, bin)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn a_glb_loads_with_its_nodes_names_and_world_transforms() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, bin) = model_doc(4);
    let path = write(dir.path(), "model.glb", &glb(&doc, &bin));
    let mut scene = Scene::new();
    let report = load_gltf(&path, &mut scene, None).unwrap();

    // Four glTF nodes plus the model's own root named after the file.
    assert_eq!(scene.node_count(), 5);
    assert_eq!(scene.find("model"), Some(report.root));
    assert_eq!(report.nodes.iter().flatten().count(), 4);
    assert_eq!(
        (
            report.meshes,
            report.materials,
            report.textures,
            report.triangles
        ),
        (1, 2, 1, 2)
    );
    for (i, name) in ["root", "child", "other", "twin"].iter().enumerate() {
        assert_eq!(scene.find(name), report.nodes[i], "{name}");
    }
    let world = |name: &str| scene.world_transform(scene.find(name).unwrap()).unwrap();
    // child: root's 90° turn about Y takes its +Z offset of 2 to +X: 1 + 2 = 3.
    let (scale, rot, pos) = world("child").to_scale_rotation_translation();
    assert!(pos.abs_diff_eq(Vec3::new(3.0, 0.0, 0.0), 1e-5), "{pos}");
    assert!(scale.abs_diff_eq(Vec3::splat(2.0), 1e-5), "{scale}");
    assert!(rot.abs_diff_eq(Quat::from_rotation_y(std::f32::consts::FRAC_PI_2), 1e-5));
    assert!(
        world("other")
            .w_axis
            .truncate()
            .abs_diff_eq(Vec3::new(0.0, 3.0, 0.0), 1e-6)
    );
    // Nodes sharing a glTF mesh share one scene mesh, so they draw instanced.
    let mesh_of = |name: &str| match scene.node(scene.find(name).unwrap()).unwrap().content {
        NodeContent::Mesh { mesh, material } => (mesh, material),
        ref c => panic!("{name} has {c:?}"),
    };
    assert_eq!(mesh_of("child"), mesh_of("twin"));
    let material = scene.material(mesh_of("child").1).unwrap();
    assert!(!material.lit, "KHR_materials_unlit is honoured");
    assert_eq!(material.name.as_deref(), Some("pic"));
}

#[test]
fn an_imported_textured_quad_renders_its_texture() {
    let gpu = gpu();
    let dir = tempfile::tempdir().unwrap();
    let (doc, bin) = model_doc(4);
    let path = write(dir.path(), "quad.glb", &glb(&doc, &bin));
    let mut scene = Scene::new();
    add_camera(&mut scene, None);
    let report = load_gltf(&path, &mut scene, None).unwrap();
    // Show only `twin`, moved to the origin: a 2×2 quad facing the camera.
    for name in ["root", "other"] {
        scene.set_visible(scene.find(name).unwrap(), false).unwrap();
    }
    let twin = report.nodes[3].unwrap();
    scene
        .set_transform(twin, lockstep_scene::Transform::IDENTITY)
        .unwrap();
    let (img, list) = render(&gpu, &scene);
    assert_eq!(list.stats.drawn, 1);
    // ±1 at distance 5 is ±20.8 px around (80, 60); sample 10 px in.
    let (cx, cy) = (W / 2, H / 2);
    assert_pixel(&img, cx - 10, cy - 10, [255, 0, 0, 255], 2);
    assert_pixel(&img, cx + 10, cy - 10, [0, 255, 0, 255], 2);
    assert_pixel(&img, cx - 10, cy + 10, [0, 0, 255, 255], 2);
    assert_pixel(&img, cx + 10, cy + 10, [255, 255, 0, 255], 2);
}

/// Imports `bytes` written as `name` and returns the error text; the scene must not change.
fn import_error(name: &str, bytes: &[u8]) -> (ImportErrorKind, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, bytes);
    let mut scene = Scene::new();
    scene
        .add(lockstep_scene::Node::empty().named("keep"), None)
        .unwrap();
    let err = load_gltf(&path, &mut scene, None).expect_err("import must fail");
    assert_eq!(
        scene.node_count(),
        1,
        "a failed import leaves the scene unchanged"
    );
    assert_eq!(scene.mesh_count(), 0);
    let text = err.to_string();
    assert!(
        text.starts_with(&path.display().to_string()),
        "names the file: {text}"
    );
    (err.kind, text)
}

#[test]
fn a_corrupt_glb_is_refused_as_invalid() {
    let mut bytes = b"glTF".to_vec();
    bytes.extend_from_slice(&2u32.to_le_bytes());
    bytes.extend_from_slice(&999u32.to_le_bytes());
    bytes.extend_from_slice(&[0xAB; 40]);
    let (kind, text) = import_error("corrupt.glb", &bytes);
    assert!(matches!(kind, ImportErrorKind::Invalid(_)), "{text}");
    assert!(text.contains("not a valid glTF 2.0 file"), "{text}");
}

#[test]
fn a_truncated_glb_is_refused_as_invalid() {
    let (doc, bin) = model_doc(4);
    let whole = glb(&doc, &bin);
    for cut in [whole.len() - 10, whole.len() / 2, 30, 11] {
        let (kind, text) = import_error("cut.glb", &whole[..cut]);
        assert!(
            matches!(kind, ImportErrorKind::Invalid(_)),
            "cut at {cut}: {text}"
        );
    }
}

#[test]
fn bad_json_names_line_and_column() {
    let (kind, text) = import_error(
        "bad.gltf",
        b"{\n  \"asset\": {\"version\": \"2.0\"},\n  oops\n}",
    );
    assert!(matches!(kind, ImportErrorKind::Invalid(_)));
    assert!(text.contains("line 3"), "{text}");
}

#[test]
fn points_are_refused_as_unsupported() {
    let (doc, bin) = model_doc(0);
    let (kind, text) = import_error("points.glb", &glb(&doc, &bin));
    assert!(matches!(kind, ImportErrorKind::Unsupported(_)), "{text}");
    assert!(
        text.contains("primitive 0 of mesh 0 'quad' is drawn as Points"),
        "{text}"
    );
}

#[test]
fn an_unknown_required_extension_is_refused_as_unsupported() {
    let (mut doc, bin) = model_doc(4);
    doc["extensionsUsed"] = json!(["KHR_draco_mesh_compression"]);
    doc["extensionsRequired"] = json!(["KHR_draco_mesh_compression"]);
    let (kind, text) = import_error("draco.glb", &glb(&doc, &bin));
    assert!(matches!(kind, ImportErrorKind::Unsupported(_)), "{text}");
    assert!(text.contains("extensionsRequired"), "{text}");
}

#[test]
fn an_index_past_the_vertices_is_refused() {
    let (doc, mut bin) = model_doc(4);
    // The index buffer starts after 48 bytes of positions and 32 of UVs; make one index 9.
    bin[80 + 2..80 + 4].copy_from_slice(&9u16.to_le_bytes());
    let (kind, text) = import_error("badindex.glb", &glb(&doc, &bin));
    assert!(matches!(kind, ImportErrorKind::Invalid(_)));
    assert!(text.contains("index 9 is past its 4 vertices"), "{text}");
}

#[test]
fn a_node_cycle_is_refused_not_followed_forever() {
    let (mut doc, bin) = model_doc(4);
    doc["nodes"][1]["children"] = json!([0]);
    let (kind, text) = import_error("cycle.glb", &glb(&doc, &bin));
    assert!(matches!(kind, ImportErrorKind::Invalid(_)), "{text}");
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let mut scene = Scene::new();
    let err = load_gltf(Path::new("/nonexistent/model.glb"), &mut scene, None).unwrap_err();
    assert!(matches!(err.kind, ImportErrorKind::Io(_)));
    assert_eq!(
        err.to_string(),
        "/nonexistent/model.glb: cannot read file: No such file or directory (os error 2)"
    );
}

#[test]
fn duplicate_names_are_made_unique_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (doc, bin) = model_doc(4);
    let path = write(dir.path(), "m.glb", &glb(&doc, &bin));
    let mut scene = Scene::new();
    load_gltf(&path, &mut scene, None).unwrap();
    let second = load_gltf(&path, &mut scene, None).unwrap();
    assert_eq!(scene.find("m.1"), Some(second.root));
    assert_eq!(scene.find("child.1"), second.nodes[1]);
    assert!(
        second
            .warnings
            .iter()
            .any(|w| w == "node 'child' renamed to 'child.1' (names are unique)"),
        "{:?}",
        second.warnings
    );
}

/// A one-triangle `.gltf` whose buffer is the file `uri` names.
fn triangle_with_buffer(uri: &str) -> Vec<u8> {
    format!(
        r#"{{"asset": {{"version": "2.0"}}, "scenes": [{{"nodes": [0]}}],
        "nodes": [{{"mesh": 0}}],
        "meshes": [{{"primitives": [{{"attributes": {{"POSITION": 0}}}}]}}],
        "accessors": [{{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3",
                        "min": [0, 0, 0], "max": [1, 1, 0]}}],
        "bufferViews": [{{"buffer": 0, "byteLength": 36}}],
        "buffers": [{{"byteLength": 36, "uri": "{uri}"}}]}}"#
    )
    .into_bytes()
}

#[test]
fn a_model_reads_only_files_beside_it() {
    for uri in [
        "../secret.bin",
        "/etc/passwd",
        "file:///etc/passwd",
        "a/%2E%2E/%2E%2E/x.bin",
    ] {
        let (kind, text) = import_error("m.gltf", &triangle_with_buffer(uri));
        assert!(
            matches!(kind, ImportErrorKind::Unsupported(_)),
            "{uri}: {text}"
        );
        assert!(
            text.ends_with(&format!(
                "URI '{uri}' points outside the model's folder: only files beside the model are read"
            )),
            "{text}"
        );
    }
    // Escapes are decoded as the importer does: a file with a space in its name loads, and
    // is listed among the model's files.
    let dir = tempfile::tempdir().unwrap();
    let tri: Vec<u8> = [0f32, 0., 0., 1., 0., 0., 0., 1., 0.]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    write(dir.path(), "tri angle.bin", &tri);
    let path = write(
        dir.path(),
        "m.gltf",
        &triangle_with_buffer("tri%20angle.bin"),
    );
    let mut scene = Scene::new();
    load_gltf(&path, &mut scene, None).unwrap();
    assert_eq!(
        lockstep_render::import::model_files(&path).unwrap(),
        [path.clone(), dir.path().join("tri angle.bin")]
    );
}
