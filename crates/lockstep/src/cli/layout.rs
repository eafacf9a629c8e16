/*!
`lockstep config draw`: a picture of a cluster's screens and the head, from above (X right,
Z down the page) and from the front (X right, Y up). Each screen is outlined in its own colour
and labelled with its name and the nodes that show it.
*/
use image::{Rgba, RgbaImage};
use imageproc::drawing::{draw_filled_circle_mut, draw_filled_rect_mut, draw_line_segment_mut};
use imageproc::rect::Rect;
use lockstep::display::ClusterConfig;
use lockstep::scene::glam::{Vec2, Vec3};

const BACKGROUND: Rgba<u8> = Rgba([250, 250, 247, 255]);
const INK: Rgba<u8> = Rgba([40, 40, 48, 255]);
const GRID: Rgba<u8> = Rgba([222, 222, 216, 255]);
const HEAD: Rgba<u8> = Rgba([200, 30, 30, 255]);

/// Distinct colours for screens, cycled.
const PALETTE: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [148, 103, 189],
    [214, 39, 40],
    [23, 190, 207],
    [140, 86, 75],
    [188, 189, 34],
];

/// Which plane a panel shows, and how points map to it.
struct Panel {
    title: &'static str,
    /// World point → 2D point in metres (x right, y up the page).
    project: fn(Vec3) -> Vec2,
    origin: (f32, f32),
    size: (f32, f32),
}

pub fn draw(c: &ClusterConfig, width: u32, height: u32) -> RgbaImage {
    let mut img = RgbaImage::from_pixel(width, height, BACKGROUND);
    let half = width as f32 / 2.0;
    let panels = [
        Panel {
            title: "from above (x right, z down)",
            project: |p| Vec2::new(p.x, -p.z),
            origin: (0.0, 0.0),
            size: (half, height as f32),
        },
        Panel {
            title: "from the front (x right, y up)",
            project: |p| Vec2::new(p.x, p.y),
            origin: (half, 0.0),
            size: (half, height as f32),
        },
    ];
    draw_line_segment_mut(&mut img, (half, 0.0), (half, height as f32), GRID);
    for panel in &panels {
        draw_panel(&mut img, c, panel);
    }
    img
}

fn draw_panel(img: &mut RgbaImage, c: &ClusterConfig, panel: &Panel) {
    let project = panel.project;
    // Fit every corner and the head into the panel, same scale on both axes.
    let mut pts: Vec<Vec2> = c
        .screens
        .iter()
        .flat_map(|s| [s.lower_left, s.lower_right, s.upper_left, s.upper_right()])
        .map(project)
        .collect();
    pts.push(project(c.head.position));
    let (mut lo, mut hi) = (pts[0], pts[0]);
    for p in &pts {
        lo = lo.min(*p);
        hi = hi.max(*p);
    }
    let margin = 40.0;
    let title_h = 28.0;
    let (pw, ph) = (
        panel.size.0 - 2.0 * margin,
        panel.size.1 - 2.0 * margin - title_h,
    );
    let span = (hi - lo).max(Vec2::splat(0.5));
    let scale = (pw / span.x).min(ph / span.y);
    let centre = (lo + hi) * 0.5;
    let to_px = |p: Vec2| {
        let q = (p - centre) * scale;
        (
            panel.origin.0 + panel.size.0 / 2.0 + q.x,
            panel.origin.1 + title_h + margin + ph / 2.0 - q.y,
        )
    };

    // A one-metre grid, so sizes can be read off.
    let (gx0, gx1) = (((lo.x - 1.0).floor()) as i32, ((hi.x + 1.0).ceil()) as i32);
    let (gy0, gy1) = (((lo.y - 1.0).floor()) as i32, ((hi.y + 1.0).ceil()) as i32);
    for gx in gx0..=gx1 {
        let a = to_px(Vec2::new(gx as f32, gy0 as f32));
        let b = to_px(Vec2::new(gx as f32, gy1 as f32));
        draw_clipped_line(img, a, b, GRID, panel);
    }
    for gy in gy0..=gy1 {
        let a = to_px(Vec2::new(gx0 as f32, gy as f32));
        let b = to_px(Vec2::new(gx1 as f32, gy as f32));
        draw_clipped_line(img, a, b, GRID, panel);
    }
    text(img, panel.origin.0 as i32 + 12, 10, panel.title, INK, 2);
    text(
        img,
        panel.origin.0 as i32 + 12,
        panel.size.1 as i32 - 18,
        "grid: 1 m",
        INK,
        1,
    );

    // Largest projected area first, so screens seen edge-on (drawn as lines) stay visible on
    // top of a floor or ceiling seen face-on.
    let area = |s: &lockstep::display::Screen| {
        let (a, b, d) = (
            project(s.lower_left),
            project(s.lower_right),
            project(s.upper_left),
        );
        ((b - a).perp_dot(d - a)).abs()
    };
    let mut order: Vec<usize> = (0..c.screens.len()).collect();
    order.sort_by(|x, y| area(&c.screens[*y]).total_cmp(&area(&c.screens[*x])));
    for i in order {
        let s = &c.screens[i];
        let [r, g, b] = PALETTE[i % PALETTE.len()];
        let colour = Rgba([r, g, b, 255]);
        let corners =
            [s.lower_left, s.lower_right, s.upper_right(), s.upper_left].map(|p| to_px(project(p)));
        for k in 0..4 {
            let (a, b) = (corners[k], corners[(k + 1) % 4]);
            for d in [-1.0f32, 0.0, 1.0] {
                draw_line_segment_mut(img, (a.0 + d, a.1), (b.0 + d, b.1), colour);
                draw_line_segment_mut(img, (a.0, a.1 + d), (b.0, b.1 + d), colour);
            }
        }
        let nodes: Vec<&str> = c
            .nodes
            .iter()
            .filter(|n| {
                n.windows
                    .iter()
                    .any(|w| w.viewports.iter().any(|v| v.screen == s.name))
            })
            .map(|n| n.name.as_str())
            .collect();
        let label = if nodes.is_empty() {
            format!("{} (no node)", s.name)
        } else {
            format!("{}: {}", s.name, nodes.join(", "))
        };
        let (cx, cy) = to_px(project(s.center()));
        // Offset labels of screens that project onto the same spot (e.g. walls seen edge-on).
        let dy = (i as i32 % 3) * 12 - 12;
        text(
            img,
            cx as i32 - (label.len() as i32 * 4),
            cy as i32 + dy,
            &label,
            colour,
            1,
        );
    }
    let (hx, hy) = to_px(project(c.head.position));
    draw_filled_circle_mut(img, (hx as i32, hy as i32), 6, HEAD);
    text(img, hx as i32 + 9, hy as i32 - 4, "head", HEAD, 1);
}

fn draw_clipped_line(
    img: &mut RgbaImage,
    a: (f32, f32),
    b: (f32, f32),
    colour: Rgba<u8>,
    panel: &Panel,
) {
    let (x0, x1) = (panel.origin.0 + 2.0, panel.origin.0 + panel.size.0 - 2.0);
    let clip = |p: (f32, f32)| (p.0.clamp(x0, x1), p.1.clamp(30.0, panel.size.1 - 24.0));
    draw_line_segment_mut(img, clip(a), clip(b), colour);
}

/// Draws ASCII text with the 8×8 bitmap font, each font pixel `scale` pixels wide, on a
/// background box so labels stay readable over lines.
fn text(img: &mut RgbaImage, x: i32, y: i32, s: &str, colour: Rgba<u8>, scale: i32) {
    use font8x8::UnicodeFonts;
    let w = s.chars().count() as i32 * 8 * scale;
    draw_filled_rect_mut(
        img,
        Rect::at(x - 2, y - 2).of_size((w + 4).max(1) as u32, (8 * scale + 4) as u32),
        BACKGROUND,
    );
    for (i, ch) in s.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS
            .get(ch)
            .or_else(|| font8x8::BASIC_FONTS.get('?'));
        let Some(glyph) = glyph else { continue };
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    let px = x + (i as i32 * 8 + col) * scale;
                    let py = y + row as i32 * scale;
                    draw_filled_rect_mut(
                        img,
                        Rect::at(px, py).of_size(scale as u32, scale as u32),
                        colour,
                    );
                }
            }
        }
    }
}
