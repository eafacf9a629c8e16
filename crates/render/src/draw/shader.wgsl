// One shader for every mesh: per-instance world matrices (instancing), a base colour that
// multiplies a texture, and per-pixel Blinn-Phong lighting for lit materials.

const MAX_LIGHTS: u32 = 8u;

struct Light {
    // xyz: direction light travels (w = 0) or position (w = 1).
    position_or_direction: vec4<f32>,
    // rgb: colour * intensity; a: range of a point light.
    color_range: vec4<f32>,
};

struct Globals {
    view_proj: mat4x4<f32>,
    camera_position: vec4<f32>,
    ambient: vec4<f32>,
    light_count: vec4<u32>,
    lights: array<Light, 8>,
};

@group(0) @binding(0) var<uniform> globals: Globals;
@group(1) @binding(0) var base_texture: texture_2d<f32>;
@group(1) @binding(1) var base_sampler: sampler;

struct VertexIn {
    @location(0) position: vec3<f32>,
    @location(1) normal: vec3<f32>,
    @location(2) uv: vec2<f32>,
    @location(3) model_0: vec4<f32>,
    @location(4) model_1: vec4<f32>,
    @location(5) model_2: vec4<f32>,
    @location(6) model_3: vec4<f32>,
    @location(7) normal_0: vec4<f32>,
    @location(8) normal_1: vec4<f32>,
    @location(9) normal_2: vec4<f32>,
    @location(10) color: vec4<f32>,
};

struct VertexOut {
    @builtin(position) clip: vec4<f32>,
    @location(0) world_position: vec3<f32>,
    @location(1) world_normal: vec3<f32>,
    @location(2) uv: vec2<f32>,
    @location(3) color: vec4<f32>,
};

@vertex
fn vs_main(in: VertexIn) -> VertexOut {
    let model = mat4x4<f32>(in.model_0, in.model_1, in.model_2, in.model_3);
    let normal_matrix = mat3x3<f32>(in.normal_0.xyz, in.normal_1.xyz, in.normal_2.xyz);
    let world = model * vec4<f32>(in.position, 1.0);
    var out: VertexOut;
    out.clip = globals.view_proj * world;
    out.world_position = world.xyz;
    out.world_normal = normal_matrix * in.normal;
    out.uv = in.uv;
    out.color = in.color;
    return out;
}

fn base_color(in: VertexOut) -> vec4<f32> {
    return in.color * textureSample(base_texture, base_sampler, in.uv);
}

@fragment
fn fs_unlit(in: VertexOut) -> @location(0) vec4<f32> {
    return base_color(in);
}

@fragment
fn fs_lit(in: VertexOut, @builtin(front_facing) front: bool) -> @location(0) vec4<f32> {
    let albedo = base_color(in);
    var n = normalize(in.world_normal);
    if (!front) {
        n = -n;
    }
    let to_eye = normalize(globals.camera_position.xyz - in.world_position);
    var light = globals.ambient.rgb;
    let count = min(globals.light_count.x, MAX_LIGHTS);
    for (var i = 0u; i < count; i = i + 1u) {
        let l = globals.lights[i];
        var to_light: vec3<f32>;
        var attenuation = 1.0;
        if (l.position_or_direction.w == 0.0) {
            to_light = -normalize(l.position_or_direction.xyz);
        } else {
            let d = l.position_or_direction.xyz - in.world_position;
            let dist = length(d);
            to_light = d / max(dist, 1e-4);
            let x = clamp(1.0 - (dist * dist) / (l.color_range.a * l.color_range.a), 0.0, 1.0);
            attenuation = x * x / max(dist * dist, 0.01);
        }
        let diffuse = max(dot(n, to_light), 0.0);
        let half_vector = normalize(to_light + to_eye);
        let specular = select(0.0, pow(max(dot(n, half_vector), 0.0), 48.0) * 0.25, diffuse > 0.0);
        light = light + l.color_range.rgb * attenuation * (diffuse + specular);
    }
    return vec4<f32>(albedo.rgb * light, albedo.a);
}
