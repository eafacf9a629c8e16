/*!
glTF 2.0 import: node hierarchy with names and TRS transforms, triangle meshes, base-colour
factors and textures (any texture-coordinate set; nearest or linear filtering), unlit materials
and perspective cameras.

The file is parsed and converted completely before the scene is touched, so a file that fails
anywhere leaves the scene as it was. What lockstep cannot draw faithfully (points and lines,
float images, unknown required extensions) is an error; what it merely ignores (animations,
skins, morph targets, blending) is reported as a warning.
*/
use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use glam::{Quat, Vec2, Vec3};
use gltf::mesh::Mode;
use lockstep_scene::{
    Camera, Color, Material, Mesh, Node, NodeContent, NodeId, Scene, SceneError, Texture,
    TextureFilter, Transform, Vertex,
};

/// A glTF file that could not be imported, and why.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {kind}")]
pub struct ImportError {
    /// The file given to [`load_gltf`].
    pub path: PathBuf,
    /// What went wrong.
    pub kind: ImportErrorKind,
}

/// The reasons an import fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportErrorKind {
    /// The file itself cannot be read (missing, unreadable, a folder).
    #[error("cannot read file: {0}")]
    Io(#[source] std::io::Error),
    /// The bytes are not valid glTF 2.0: bad JSON or GLB container, broken references,
    /// truncated buffers, undecodable images, index values past the vertex count.
    #[error("not a valid glTF 2.0 file: {0}")]
    Invalid(String),
    /// Valid glTF that uses something lockstep cannot draw faithfully.
    #[error("unsupported glTF feature: {0}")]
    Unsupported(String),
    /// The scene refused the result (should not happen: names are made unique first).
    #[error("cannot add to scene: {0}")]
    Scene(#[from] SceneError),
}

/// What an import added to the scene.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// The node holding the whole model, named after the file (made unique if needed).
    pub root: NodeId,
    /// Nodes created from glTF nodes, in the file's node order (empty entries for nodes
    /// outside the imported glTF scene).
    pub nodes: Vec<Option<NodeId>>,
    /// Meshes added (one per glTF primitive).
    pub meshes: usize,
    /// Materials added.
    pub materials: usize,
    /// Textures added.
    pub textures: usize,
    /// Triangles over all added meshes.
    pub triangles: usize,
    /// Things that were ignored or changed (e.g. a renamed duplicate node name).
    pub warnings: Vec<String>,
}

/// Imports the default scene of a `.gltf` or `.glb` file under `parent` (or as a root).
pub fn load_gltf(
    path: &Path,
    scene: &mut Scene,
    parent: Option<NodeId>,
) -> Result<ImportReport, ImportError> {
    let fail = |kind| ImportError {
        path: path.to_path_buf(),
        kind,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(ImportErrorKind::Io(e)))?;
    if !meta.is_file() {
        return Err(fail(ImportErrorKind::Io(std::io::Error::other(
            "not a regular file",
        ))));
    }
    // Before the importer reads them: the files it names must lie beside it.
    model_files(path)?;
    // A malformed file must never take the process down: if the parser panics on input it
    // failed to validate, that is reported like any other invalid file.
    let model = catch_unwind(AssertUnwindSafe(|| convert(path)))
        .unwrap_or_else(|_| {
            Err(ImportErrorKind::Invalid(
                "the glTF parser failed on malformed data".into(),
            ))
        })
        .map_err(fail)?;
    model.insert(path, scene, parent).map_err(fail)
}

/// The files a glTF model is made of: the file itself, then each buffer and image it names
/// by a relative URI (in the file's order, each once). Data URIs and a GLB's own chunks are
/// inside the file.
pub fn model_files(path: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let fail = |kind| ImportError {
        path: path.to_path_buf(),
        kind,
    };
    let doc = catch_unwind(AssertUnwindSafe(|| gltf::Gltf::open(path)))
        .map_err(|_| {
            fail(ImportErrorKind::Invalid(
                "the glTF parser failed on malformed data".into(),
            ))
        })?
        .map_err(|e| fail(map_gltf_error(e)))?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let mut files = vec![path.to_path_buf()];
    let beside = |uri: &str| -> Result<Option<PathBuf>, ImportError> {
        local_file(dir, uri).map_err(|why| fail(ImportErrorKind::Unsupported(why)))
    };
    let buffers = doc.buffers().filter_map(|b| match b.source() {
        gltf::buffer::Source::Uri(uri) => Some(uri),
        gltf::buffer::Source::Bin => None,
    });
    let images = doc.images().filter_map(|i| match i.source() {
        gltf::image::Source::Uri { uri, .. } => Some(uri),
        gltf::image::Source::View { .. } => None,
    });
    for uri in buffers.chain(images) {
        if let Some(file) = beside(uri)?
            && !files.contains(&file)
        {
            files.push(file);
        }
    }
    Ok(files)
}

/// The file a glTF URI names, in `dir` (the model's folder) or below it; `None` for data
/// held in the URI itself. Another scheme, an absolute path or a `..` is refused: a model
/// (perhaps shipped by someone else to a cluster's hosts) may make lockstep read only files
/// that come with it.
fn local_file(dir: &Path, uri: &str) -> Result<Option<PathBuf>, String> {
    if uri.starts_with("data:") {
        return Ok(None);
    }
    let decoded = percent_decoded(uri).ok_or_else(|| format!("URI '{uri}' is not valid"))?;
    let scheme = decoded
        .split_once(':')
        .is_some_and(|(head, _)| !head.contains('/'));
    let path = Path::new(&decoded);
    let inside = path.components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if scheme || !inside {
        return Err(format!(
            "URI '{uri}' points outside the model's folder: only files beside the model are read"
        ));
    }
    Ok(Some(dir.join(path)))
}

/// `uri` with its `%XX` escapes decoded, if they are valid and give UTF-8.
fn percent_decoded(uri: &str) -> Option<String> {
    let bytes = uri.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A node of the model before it enters a scene.
struct PendingNode {
    gltf_index: usize,
    name: Option<String>,
    parent: Option<usize>,
    transform: Transform,
    content: NodeContent,
    /// Further primitives of the node's mesh, as (mesh, material) indices into the model.
    extra_primitives: Vec<(usize, usize)>,
}

/// The converted file, with indices local to it.
struct Model {
    textures: Vec<Texture>,
    /// Materials with `texture` holding an index into `textures`.
    materials: Vec<Material>,
    meshes: Vec<Mesh>,
    /// Parents before children.
    nodes: Vec<PendingNode>,
    gltf_node_count: usize,
    warnings: Vec<String>,
}

struct Describe<'a>(Option<&'a str>, usize);

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{} '{n}'", self.1),
            None => write!(f, "{}", self.1),
        }
    }
}

fn map_gltf_error(e: gltf::Error) -> ImportErrorKind {
    use gltf::json::validation::Error as V;
    match e {
        gltf::Error::Validation(errors) => {
            let unsupported: Vec<String> = errors
                .iter()
                .filter(|(_, e)| matches!(e, V::Unsupported))
                .map(|(p, _)| p.to_string())
                .collect();
            let all: Vec<String> = errors.iter().map(|(p, e)| format!("{p}: {e}")).collect();
            if unsupported.is_empty() {
                ImportErrorKind::Invalid(all.join("; "))
            } else {
                ImportErrorKind::Unsupported(format!(
                    "required extension(s) at {} not supported",
                    unsupported.join(", ")
                ))
            }
        }
        gltf::Error::Deserialize(e) => ImportErrorKind::Invalid(format!("JSON: {e}")),
        gltf::Error::Binary(e) => ImportErrorKind::Invalid(format!("GLB container: {e}")),
        gltf::Error::Io(e) => {
            ImportErrorKind::Invalid(format!("cannot read a referenced buffer or image: {e}"))
        }
        gltf::Error::Image(e) => ImportErrorKind::Invalid(format!("cannot decode image: {e}")),
        e @ (gltf::Error::UnsupportedImageEncoding | gltf::Error::UnsupportedScheme) => {
            ImportErrorKind::Unsupported(e.to_string())
        }
        other => ImportErrorKind::Invalid(other.to_string()),
    }
}

fn convert(path: &Path) -> Result<Model, ImportErrorKind> {
    let (doc, buffers, images) = gltf::import(path).map_err(map_gltf_error)?;
    let mut warnings = Vec::new();
    if doc.animations().next().is_some() {
        warnings.push("animations are ignored".to_string());
    }
    if doc.skins().next().is_some() {
        warnings.push("skins are ignored (meshes are drawn in bind pose)".to_string());
    }
    for ext in doc.extensions_used() {
        if ext != "KHR_materials_unlit" {
            warnings.push(format!("extension {ext} is ignored"));
        }
    }

    // Textures, converted on first use by a material's base colour.
    let mut textures = Vec::new();
    let mut converted: HashMap<usize, usize> = HashMap::new();
    let mut materials = Vec::new();
    let mut uv_set_of_material = Vec::new();
    for (i, m) in doc.materials().enumerate() {
        let pbr = m.pbr_metallic_roughness();
        let [r, g, b, a] = pbr.base_color_factor();
        let mut material = if m.unlit() {
            Material::unlit(Color::rgba(r, g, b, a))
        } else {
            Material::lit(Color::rgba(r, g, b, a))
        };
        material.name = m.name().map(str::to_string);
        if m.alpha_mode() == gltf::material::AlphaMode::Blend {
            warnings.push(format!(
                "material {} uses alpha blending; it is drawn opaque",
                Describe(m.name(), i)
            ));
        }
        let mut uv_set = 0;
        if let Some(info) = pbr.base_color_texture() {
            uv_set = info.tex_coord();
            let gltf_texture = info.texture();
            let image = gltf_texture.source().index();
            let t = match converted.get(&gltf_texture.index()) {
                Some(t) => *t,
                None => {
                    let data = images.get(image).ok_or_else(|| {
                        ImportErrorKind::Invalid(format!("image {image} was not loaded"))
                    })?;
                    let name = doc
                        .images()
                        .nth(image)
                        .and_then(|im| im.name().map(str::to_string))
                        .unwrap_or_else(|| format!("image {image}"));
                    let nearest = gltf_texture.sampler().mag_filter()
                        == Some(gltf::texture::MagFilter::Nearest);
                    let filter = if nearest {
                        TextureFilter::Nearest
                    } else {
                        TextureFilter::Linear
                    };
                    textures.push(to_texture(&name, data)?.with_filter(filter));
                    converted.insert(gltf_texture.index(), textures.len() - 1);
                    textures.len() - 1
                }
            };
            material.texture = Some(lockstep_scene::TextureId(t as u32));
        }
        materials.push(material);
        uv_set_of_material.push(uv_set);
    }
    let default_material = materials.len();
    materials.push(Material::lit(Color::WHITE).named("glTF default"));
    uv_set_of_material.push(0);

    // One lockstep mesh per glTF primitive; nodes sharing a glTF mesh share these (and are
    // drawn instanced).
    let mut meshes = Vec::new();
    let mut primitives_of_mesh: Vec<Vec<(usize, usize)>> = Vec::new();
    for mesh in doc.meshes() {
        let mut prims = Vec::new();
        for prim in mesh.primitives() {
            let what = format!(
                "primitive {} of mesh {}",
                prim.index(),
                Describe(mesh.name(), mesh.index())
            );
            if prim.morph_targets().next().is_some() {
                warnings.push(format!("{what}: morph targets are ignored"));
            }
            let material = prim.material().index().unwrap_or(default_material);
            let uv_set = uv_set_of_material[material];
            let mut m = convert_primitive(&prim, &buffers, uv_set, &what)?;
            m.name = Some(match mesh.name() {
                Some(n) => format!("{n}/{}", prim.index()),
                None => format!("mesh {}/{}", mesh.index(), prim.index()),
            });
            meshes.push(m);
            prims.push((meshes.len() - 1, material));
        }
        primitives_of_mesh.push(prims);
    }

    // The hierarchy of the default scene (or the first; or every parentless node if the file
    // declares no scene). Children are visited iteratively: files can be deep, and a cycle or
    // a node with two parents (both invalid glTF) must not loop forever.
    let roots: Vec<gltf::Node> = match doc.default_scene().or_else(|| doc.scenes().next()) {
        Some(s) => s.nodes().collect(),
        None => {
            let mut is_child = vec![false; doc.nodes().len()];
            for n in doc.nodes() {
                for c in n.children() {
                    is_child[c.index()] = true;
                }
            }
            doc.nodes().filter(|n| !is_child[n.index()]).collect()
        }
    };
    let mut seen = vec![false; doc.nodes().len()];
    let mut nodes = Vec::new();
    let mut stack: Vec<(gltf::Node, Option<usize>)> =
        roots.into_iter().rev().map(|n| (n, None)).collect();
    while let Some((n, parent)) = stack.pop() {
        if std::mem::replace(&mut seen[n.index()], true) {
            return Err(ImportErrorKind::Invalid(format!(
                "node {} is reached twice (a cycle, or two parents)",
                Describe(n.name(), n.index())
            )));
        }
        let (t, r, s) = n.transform().decomposed();
        let mut content = NodeContent::Empty;
        let mut extra = Vec::new();
        if let Some(mesh) = n.mesh() {
            let prims = &primitives_of_mesh[mesh.index()];
            if let Some(((first_mesh, first_mat), rest)) = prims.split_first() {
                content = NodeContent::Mesh {
                    mesh: lockstep_scene::MeshId(*first_mesh as u32),
                    material: lockstep_scene::MaterialId(*first_mat as u32),
                };
                extra = rest.to_vec();
            }
        }
        if let Some(cam) = n.camera() {
            match (cam.projection(), &content) {
                (gltf::camera::Projection::Perspective(p), NodeContent::Empty) => {
                    content = NodeContent::Camera(Camera::perspective(
                        p.yfov(),
                        p.aspect_ratio().unwrap_or(16.0 / 9.0),
                        p.znear(),
                        p.zfar().unwrap_or(p.znear() * 100_000.0),
                    ));
                }
                (gltf::camera::Projection::Orthographic(_), _) => warnings.push(format!(
                    "node {}: orthographic cameras are ignored",
                    Describe(n.name(), n.index())
                )),
                _ => warnings.push(format!(
                    "node {}: camera on a mesh node is ignored",
                    Describe(n.name(), n.index())
                )),
            }
        }
        nodes.push(PendingNode {
            gltf_index: n.index(),
            name: n.name().map(str::to_string),
            parent,
            transform: Transform {
                translation: Vec3::from_array(t),
                rotation: Quat::from_array(r).normalize(),
                scale: Vec3::from_array(s),
            },
            content,
            extra_primitives: extra,
        });
        let me = nodes.len() - 1;
        let children: Vec<gltf::Node> = n.children().collect();
        stack.extend(children.into_iter().rev().map(|c| (c, Some(me))));
    }

    Ok(Model {
        textures,
        materials,
        meshes,
        nodes,
        gltf_node_count: doc.nodes().len(),
        warnings,
    })
}

fn convert_primitive(
    prim: &gltf::Primitive,
    buffers: &[gltf::buffer::Data],
    uv_set: u32,
    what: &str,
) -> Result<Mesh, ImportErrorKind> {
    let reader = prim.reader(|b| buffers.get(b.index()).map(|d| d.0.as_slice()));
    let positions: Vec<Vec3> = reader
        .read_positions()
        .ok_or_else(|| ImportErrorKind::Invalid(format!("{what} has no POSITION data")))?
        .map(Vec3::from_array)
        .collect();
    let n = positions.len() as u32;
    let raw: Vec<u32> = match reader.read_indices() {
        Some(i) => i.into_u32().collect(),
        None => (0..n).collect(),
    };
    if let Some(bad) = raw.iter().find(|i| **i >= n) {
        return Err(ImportErrorKind::Invalid(format!(
            "{what}: index {bad} is past its {n} vertices"
        )));
    }
    let indices = match prim.mode() {
        Mode::Triangles => raw[..raw.len() - raw.len() % 3].to_vec(),
        Mode::TriangleStrip => (2..raw.len())
            .flat_map(|i| {
                if i % 2 == 0 {
                    [raw[i - 2], raw[i - 1], raw[i]]
                } else {
                    [raw[i - 1], raw[i - 2], raw[i]]
                }
            })
            .collect(),
        Mode::TriangleFan => (2..raw.len())
            .flat_map(|i| [raw[0], raw[i - 1], raw[i]])
            .collect(),
        other => {
            return Err(ImportErrorKind::Unsupported(format!(
                "{what} is drawn as {other:?}; lockstep draws triangles only"
            )));
        }
    };
    let uvs: Option<Vec<Vec2>> = reader
        .read_tex_coords(uv_set)
        .map(|t| t.into_f32().map(Vec2::from_array).collect());
    let normals: Option<Vec<Vec3>> = reader
        .read_normals()
        .map(|r| r.map(Vec3::from_array).collect());
    let vertex = |i: usize, normal: Vec3| Vertex {
        position: positions[i],
        normal,
        uv: uvs
            .as_ref()
            .and_then(|u| u.get(i).copied())
            .unwrap_or(Vec2::ZERO),
    };
    match normals {
        Some(normals) if normals.len() == positions.len() => {
            let vertices = (0..positions.len())
                .map(|i| vertex(i, normals[i].normalize_or(Vec3::Y)))
                .collect();
            Ok(Mesh::new(vertices, indices))
        }
        _ => {
            // glTF asks for flat shading when normals are absent: one vertex per corner.
            let mut vertices = Vec::with_capacity(indices.len());
            for tri in indices.chunks_exact(3) {
                let [a, b, c] = [0, 1, 2].map(|k| positions[tri[k] as usize]);
                let normal = (b - a).cross(c - a).normalize_or(Vec3::Y);
                vertices.extend(tri.iter().map(|i| vertex(*i as usize, normal)));
            }
            let flat = (0..vertices.len() as u32).collect();
            Ok(Mesh::new(vertices, flat))
        }
    }
}

fn to_texture(name: &str, data: &gltf::image::Data) -> Result<Texture, ImportErrorKind> {
    use gltf::image::Format as F;
    let px = &data.pixels;
    let hi = |c: &[u8]| u16::from_ne_bytes([c[0], c[1]]).to_be_bytes()[0];
    let rgba: Vec<u8> = match data.format {
        F::R8G8B8A8 => px.clone(),
        F::R8G8B8 => px
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        F::R8G8 => px
            .chunks_exact(2)
            .flat_map(|p| [p[0], p[1], 0, 255])
            .collect(),
        F::R8 => px.iter().flat_map(|v| [*v, *v, *v, 255]).collect(),
        F::R16G16B16A16 => px.chunks_exact(2).map(hi).collect(),
        F::R16G16B16 => px
            .chunks_exact(6)
            .flat_map(|p| [hi(&p[0..2]), hi(&p[2..4]), hi(&p[4..6]), 255])
            .collect(),
        F::R16G16 => px
            .chunks_exact(4)
            .flat_map(|p| [hi(&p[0..2]), hi(&p[2..4]), 0, 255])
            .collect(),
        F::R16 => px
            .chunks_exact(2)
            .flat_map(|p| {
                let v = hi(p);
                [v, v, v, 255]
            })
            .collect(),
        other => {
            return Err(ImportErrorKind::Unsupported(format!(
                "image '{name}' has pixel format {other:?}; base-colour textures must be 8 or 16 bits per channel"
            )));
        }
    };
    Texture::new(name, data.width, data.height, rgba)
        .map_err(|e| ImportErrorKind::Invalid(e.to_string()))
}

/// `base`, or `base.1`, `base.2`… whichever the scene does not have yet.
fn unique_name(scene: &Scene, base: &str) -> String {
    if scene.find(base).is_none() {
        return base.to_string();
    }
    (1..)
        .map(|i| format!("{base}.{i}"))
        .find(|n| scene.find(n).is_none())
        .unwrap_or_else(|| base.to_string())
}

impl Model {
    fn insert(
        self,
        path: &Path,
        scene: &mut Scene,
        parent: Option<NodeId>,
    ) -> Result<ImportReport, ImportErrorKind> {
        if let Some(p) = parent {
            scene.node(p)?;
        }
        let mut warnings = self.warnings;
        let texture_ids: Vec<_> = self
            .textures
            .into_iter()
            .map(|t| scene.add_texture(t))
            .collect();
        let mut material_ids = Vec::with_capacity(self.materials.len());
        for mut m in self.materials {
            m.texture = m.texture.map(|t| texture_ids[t.0 as usize]);
            material_ids.push(scene.add_material(m)?);
        }
        let triangles = self.meshes.iter().map(Mesh::triangle_count).sum();
        let mesh_ids: Vec<_> = self.meshes.into_iter().map(|m| scene.add_mesh(m)).collect();

        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let root_name = unique_name(scene, &stem);
        let root = scene.add(Node::empty().named(&root_name), parent)?;
        let result = (|| -> Result<Vec<Option<NodeId>>, ImportErrorKind> {
            let mut ids: Vec<NodeId> = Vec::with_capacity(self.nodes.len());
            let mut by_gltf = vec![None; self.gltf_node_count];
            for p in &self.nodes {
                let mut node = Node::empty().with_transform(p.transform);
                node.content = match p.content {
                    NodeContent::Mesh { mesh, material } => NodeContent::Mesh {
                        mesh: mesh_ids[mesh.0 as usize],
                        material: material_ids[material.0 as usize],
                    },
                    ref other => other.clone(),
                };
                if let Some(name) = &p.name {
                    let unique = unique_name(scene, name);
                    if &unique != name {
                        warnings.push(format!(
                            "node '{name}' renamed to '{unique}' (names are unique)"
                        ));
                    }
                    node = node.named(unique);
                }
                let parent = p.parent.map(|i| ids[i]).unwrap_or(root);
                let id = scene.add(node, Some(parent))?;
                for (mesh, material) in &p.extra_primitives {
                    scene.add(
                        Node::mesh(mesh_ids[*mesh], material_ids[*material]),
                        Some(id),
                    )?;
                }
                ids.push(id);
                by_gltf[p.gltf_index] = Some(id);
            }
            Ok(by_gltf)
        })();
        match result {
            Ok(nodes) => Ok(ImportReport {
                root,
                nodes,
                meshes: mesh_ids.len(),
                materials: material_ids.len(),
                textures: texture_ids.len(),
                triangles,
                warnings,
            }),
            Err(e) => {
                // Leave no half-imported model behind.
                let _ = scene.remove(root);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_count_up() {
        let mut s = Scene::new();
        assert_eq!(unique_name(&s, "a"), "a");
        s.add(Node::empty().named("a"), None).unwrap();
        s.add(Node::empty().named("a.1"), None).unwrap();
        assert_eq!(unique_name(&s, "a"), "a.2");
    }
}
