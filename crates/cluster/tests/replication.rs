//! Replication: a replica that applies every change list holds the master's scene, frame after
//! frame, whatever the edits.

use glam::{Quat, Vec3};
use lockstep_cluster::{ReplicationError, apply_changes, scene_hash, write_changes};
use lockstep_scene::{
    Camera, Color, Light, Material, MaterialId, Mesh, MeshId, Node, NodeId, Scene, Texture,
    TextureFilter, Transform,
};

fn master_scene() -> Scene {
    let mut s = Scene::new();
    s.background = Color::rgb(0.1, 0.2, 0.3);
    let tex = s.add_texture(
        Texture::checker("c", 16, 4, [255, 0, 0, 255], [0, 0, 255, 255])
            .with_filter(TextureFilter::Nearest),
    );
    let cube = s.add_mesh(Mesh::cube(1.0));
    let ball = s.add_mesh(Mesh::uv_sphere(0.5, 12, 6));
    let red = s
        .add_material(Material::lit(Color::rgb(1.0, 0.0, 0.0)))
        .unwrap();
    let pic = s
        .add_material(Material::unlit(Color::WHITE).with_texture(tex))
        .unwrap();
    let group = s.add(Node::empty().named("group"), None).unwrap();
    for i in 0..20 {
        let n = Node::mesh(
            if i % 2 == 0 { cube } else { ball },
            if i % 3 == 0 { pic } else { red },
        )
        .named(format!("obj{i}"))
        .with_transform(Transform::from_translation(Vec3::new(i as f32, 0.0, 0.0)));
        s.add(n, if i < 10 { Some(group) } else { None }).unwrap();
    }
    s.add(
        Node::light(Light::point(Color::WHITE, 3.0, 10.0)).named("lamp"),
        None,
    )
    .unwrap();
    let cam = s
        .add(
            Node::camera(Camera::perspective(1.0, 1.5, 0.1, 100.0)).named("cam"),
            None,
        )
        .unwrap();
    s.active_camera = Some(cam);
    s
}

/// Sends `cur` relative to `prev` and applies it to `replica`; returns the payload size.
fn sync(prev: &Scene, cur: &Scene, replica: &mut Scene) -> usize {
    let mut bytes = Vec::new();
    let n = write_changes(prev, cur, &mut bytes).unwrap();
    assert_eq!(apply_changes(replica, &bytes).unwrap(), n);
    bytes.len()
}

#[test]
fn a_full_copy_reproduces_the_scene() {
    let master = master_scene();
    let mut replica = Scene::new();
    sync(&Scene::new(), &master, &mut replica);
    assert_eq!(scene_hash(&replica), scene_hash(&master));
    assert_eq!(replica.node_count(), master.node_count());
    assert_eq!(replica.find("obj7"), master.find("obj7"));
    assert_eq!(
        replica
            .world_transform(replica.find("obj3").unwrap())
            .unwrap(),
        master
            .world_transform(master.find("obj3").unwrap())
            .unwrap()
    );
    assert_eq!(
        replica
            .texture(lockstep_scene::TextureId(0))
            .unwrap()
            .filter,
        TextureFilter::Nearest
    );
    assert_eq!(
        replica.mesh(MeshId(1)).unwrap().indices,
        master.mesh(MeshId(1)).unwrap().indices
    );
}

/// xorshift: deterministic edits.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Prints what differs, to make a failing seed quick to understand.
fn report_difference(master: &Scene, replica: &Scene) {
    for (id, n) in master.nodes() {
        match replica.node(id) {
            Ok(r) if r == n => {}
            other => eprintln!("node {id}: master {n:?}\n  replica {other:?}"),
        }
    }
    eprintln!(
        "counts: master {} nodes, {} materials; replica {} nodes, {} materials",
        master.node_count(),
        master.material_count(),
        replica.node_count(),
        replica.material_count()
    );
}

#[test]
fn random_edits_keep_the_replica_identical_frame_after_frame() {
    for seed in [42, 7, 2026] {
        random_edits(seed, 500);
    }
}

fn random_edits(seed: u64, frames: u32) {
    let mut master = master_scene();
    let mut replica = Scene::new();
    sync(&Scene::new(), &master, &mut replica);
    let mut rng = Rng(seed);
    for frame in 0..frames {
        let prev = master.clone();
        // Removing a subtree can take most of the scene with it: keep some nodes around.
        while master.node_count() < 10 {
            master
                .add(Node::mesh(MeshId(0), MaterialId(0)), None)
                .unwrap();
        }
        let ids: Vec<NodeId> = master.nodes().map(|(id, _)| id).collect();
        for _ in 0..1 + rng.below(6) {
            let id = ids[rng.below(ids.len() as u64) as usize];
            if master.node(id).is_err() {
                continue;
            }
            match rng.below(10) {
                0..=3 => {
                    let t = Transform::from_translation(Vec3::new(
                        rng.below(100) as f32 * 0.1,
                        frame as f32 * 0.01,
                        0.0,
                    ))
                    .with_rotation(Quat::from_rotation_y(rng.below(360) as f32));
                    master.set_transform(id, t).unwrap();
                }
                4 => master.set_visible(id, rng.below(2) == 0).unwrap(),
                5 => {
                    master.node_mut(id).unwrap().tint =
                        Color::rgb(rng.below(10) as f32 / 10.0, 0.5, 0.5)
                }
                6 => {
                    let n =
                        Node::mesh(MeshId(rng.below(2) as u32), MaterialId(rng.below(2) as u32));
                    master.add(n, Some(id)).unwrap();
                }
                7 => {
                    if Some(id) != master.active_camera && master.node_count() > 10 {
                        master.remove(id).unwrap();
                    }
                }
                8 => {
                    let other = ids[rng.below(ids.len() as u64) as usize];
                    let _ = master.set_parent(id, if other == id { None } else { Some(other) });
                }
                _ => {
                    let m = MaterialId(rng.below(master.material_count() as u64) as u32);
                    master
                        .set_material(
                            m,
                            Material::lit(Color::rgb(0.2, rng.below(10) as f32 / 10.0, 0.7)),
                        )
                        .unwrap();
                    if rng.below(20) == 0 {
                        let mesh =
                            master.add_mesh(Mesh::uv_sphere(0.2, 6 + rng.below(6) as u32, 4));
                        master.add(Node::mesh(mesh, m), None).unwrap();
                    }
                }
            }
        }
        if frame % 97 == 0 {
            master.background = Color::rgb(frame as f32 / 500.0, 0.0, 0.0);
        }
        sync(&prev, &master, &mut replica);
        if scene_hash(&replica) != scene_hash(&master) {
            report_difference(&master, &replica);
        }
        assert_eq!(
            scene_hash(&replica),
            scene_hash(&master),
            "seed {seed}, frame {frame}"
        );
    }
}

#[test]
fn an_unchanged_frame_and_a_moved_node_cost_few_bytes_even_in_a_large_scene() {
    let mut master = master_scene();
    let mesh = MeshId(0);
    for i in 0..100_000 {
        master
            .add(
                Node::mesh(mesh, MaterialId(0))
                    .with_transform(Transform::from_translation(Vec3::X * i as f32)),
                None,
            )
            .unwrap();
    }
    let mut replica = Scene::new();
    sync(&Scene::new(), &master, &mut replica);
    let prev = master.clone();
    assert!(sync(&prev, &master, &mut replica) <= 2, "nothing changed");
    let id = master.find("obj4").unwrap();
    master
        .set_transform(id, Transform::from_translation(Vec3::Y))
        .unwrap();
    let bytes = sync(&prev, &master, &mut replica);
    assert!(bytes < 60, "one moved node took {bytes} bytes");
    assert_eq!(scene_hash(&replica), scene_hash(&master));
}

#[test]
fn a_child_moved_under_a_newer_node_out_of_a_removed_subtree_survives_with_its_children() {
    let mut master = master_scene();
    let old_parent = master.add(Node::empty().named("old"), None).unwrap();
    let child = master
        .add(Node::empty().named("child"), Some(old_parent))
        .unwrap();
    let grandchild = master
        .add(Node::empty().named("grandchild"), Some(child))
        .unwrap();
    let mut replica = Scene::new();
    sync(&Scene::new(), &master, &mut replica);
    let prev = master.clone();
    // In one frame: a new parent (higher id than the child), the child moves under it, and
    // the old parent is removed.
    let new_parent = master.add(Node::empty().named("new"), None).unwrap();
    master.set_parent(child, Some(new_parent)).unwrap();
    master.remove(old_parent).unwrap();
    sync(&prev, &master, &mut replica);
    assert_eq!(scene_hash(&replica), scene_hash(&master));
    assert_eq!(replica.node(grandchild).unwrap().parent, Some(child));
    assert_eq!(replica.node(child).unwrap().parent, Some(new_parent));
}

#[test]
fn a_replica_that_missed_a_change_or_gets_garbage_reports_it() {
    let master = master_scene();
    let mut with_mesh = master.clone();
    with_mesh.add_mesh(Mesh::cube(2.0));
    let mut changes = Vec::new();
    write_changes(&master, &with_mesh, &mut changes).unwrap();
    // This replica never received the initial scene: the mesh arrives under the wrong id.
    let mut replica = Scene::new();
    assert_eq!(
        apply_changes(&mut replica, &changes),
        Err(ReplicationError::OutOfStep {
            kind: "mesh",
            expected: 2,
            got: 0
        })
    );
    assert!(matches!(
        apply_changes(&mut Scene::new(), &[0xff, 0xff, 0xff]),
        Err(ReplicationError::Malformed(_))
    ));
    let mut with_trailing = changes.clone();
    with_trailing.push(7);
    assert!(matches!(
        apply_changes(&mut Scene::new(), &with_trailing),
        Err(ReplicationError::Malformed(_))
    ));
}

/// A master scene with one recognisable vertex coordinate and one recognisable texel.
fn marked_scene() -> Scene {
    let mut s = master_scene();
    let mut tri = Mesh::new(
        vec![
            lockstep_scene::Vertex {
                position: Vec3::new(0.123_456_7, 0.0, 0.0),
                ..Default::default()
            },
            lockstep_scene::Vertex {
                position: Vec3::X,
                ..Default::default()
            },
            lockstep_scene::Vertex {
                position: Vec3::Y,
                ..Default::default()
            },
        ],
        vec![0, 1, 2],
    );
    tri.name = Some("tri".into());
    let tri = s.add_mesh(tri);
    let mut texels = vec![0u8; 4 * 4 * 4];
    texels[20..24].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let tex = s.add_texture(Texture::new("marked", 4, 4, texels).unwrap());
    let m = s
        .add_material(Material::unlit(Color::WHITE).with_texture(tex))
        .unwrap();
    s.add(Node::mesh(tri, m).named("marked"), None).unwrap();
    s
}

/// Copies the master's scene to a replica through a change list altered in transit: the
/// first occurrence of `find` becomes `replace`.
fn replica_with(master: &Scene, find: &[u8], replace: &[u8]) -> Scene {
    let mut bytes = Vec::new();
    write_changes(&Scene::new(), master, &mut bytes).unwrap();
    let at = bytes
        .windows(find.len())
        .position(|w| w == find)
        .expect("the marked bytes travel as they are");
    bytes[at..at + find.len()].copy_from_slice(replace);
    let mut replica = Scene::new();
    apply_changes(&mut replica, &bytes).expect("still a valid change list");
    replica
}

#[test]
fn a_replica_whose_one_vertex_or_one_texel_differs_has_another_digest() {
    let master = marked_scene();
    let exact = replica_with(&master, b"marked", b"marked");
    assert_eq!(scene_hash(&exact), scene_hash(&master));

    // One coordinate of one vertex, off by the last bit of its mantissa.
    let x = 0.123_456_7f32;
    let off = f32::from_bits(x.to_bits() + 1);
    let vertex = replica_with(&master, &x.to_le_bytes(), &off.to_le_bytes());
    let tri = lockstep_scene::MeshId(2);
    assert_eq!(vertex.mesh(tri).unwrap().vertices[0].position.x, off);
    assert_eq!(
        vertex.mesh(tri).unwrap().indices,
        master.mesh(tri).unwrap().indices,
        "sizes and indices alike"
    );
    assert_ne!(scene_hash(&vertex), scene_hash(&master), "one vertex");

    // One channel of one texel.
    let texel = replica_with(
        &master,
        &[0xde, 0xad, 0xbe, 0xef],
        &[0xde, 0xad, 0xbe, 0xee],
    );
    let t = lockstep_scene::TextureId(1);
    assert_eq!(
        texel.texture(t).unwrap().rgba8.len(),
        master.texture(t).unwrap().rgba8.len()
    );
    assert_ne!(scene_hash(&texel), scene_hash(&master), "one texel");
    assert_ne!(scene_hash(&texel), scene_hash(&vertex));
}

#[test]
fn the_order_of_the_roots_reaches_replicas_that_follow_and_replicas_that_join() {
    let mut master = master_scene();
    let mut follower = Scene::new();
    sync(&Scene::new(), &master, &mut follower);
    // obj12 goes under obj13 and back: it is now the last root on the master, which a
    // joiner rebuilding from nothing (roots by id) would not have by itself.
    let prev = master.clone();
    let (a, b) = (master.find("obj12").unwrap(), master.find("obj13").unwrap());
    master.set_parent(a, Some(b)).unwrap();
    master.set_parent(a, None).unwrap();
    master.add(Node::empty().named("late root"), None).unwrap();
    assert_eq!(master.roots().last(), master.find("late root"));
    // obj12 and obj13 (each touched), the new node, and the root order.
    assert_eq!(write_changes(&prev, &master, &mut Vec::new()).unwrap(), 4);
    let bytes = sync(&prev, &master, &mut follower);
    let mut joiner = Scene::new();
    sync(&Scene::new(), &master, &mut joiner);
    for replica in [&follower, &joiner] {
        assert_eq!(
            replica.roots().collect::<Vec<_>>(),
            master.roots().collect::<Vec<_>>()
        );
        assert_eq!(scene_hash(replica), scene_hash(&master));
    }
    assert!(bytes > 0);
    // A frame that only moves a node, or adds a root the replica appends by itself as the
    // master does, sends no root order: one change each.
    let changes = |prev: &Scene, cur: &Scene| write_changes(prev, cur, &mut Vec::new()).unwrap();
    let prev = master.clone();
    master
        .set_transform(a, Transform::from_translation(Vec3::Z))
        .unwrap();
    assert_eq!(changes(&prev, &master), 1);
    sync(&prev, &master, &mut follower);
    let prev = master.clone();
    master.add(Node::empty().named("newest"), None).unwrap();
    assert_eq!(changes(&prev, &master), 1);
    sync(&prev, &master, &mut follower);
    assert_eq!(
        follower.roots().collect::<Vec<_>>(),
        master.roots().collect::<Vec<_>>()
    );
    assert_eq!(scene_hash(&follower), scene_hash(&master));
}
