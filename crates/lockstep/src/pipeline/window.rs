/*!
Window properties: App *requests* changes, Draw *applies* them at its next frame and publishes
what it applied, which App reads back (Panda3D's `requestProperties`/`getProperties`).
*/

/// Requested changes; `None` leaves a property as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowRequest {
    /// New inner size in pixels.
    pub size: Option<(u32, u32)>,
    /// New title.
    pub title: Option<String>,
    /// Enter or leave fullscreen.
    pub fullscreen: Option<bool>,
    /// Show or hide the pointer over the window.
    pub cursor_visible: Option<bool>,
}

impl WindowRequest {
    /// True when nothing is requested.
    pub fn is_empty(&self) -> bool {
        *self == WindowRequest::default()
    }

    /// Takes `later`'s fields over this one's where set.
    pub fn merge(&mut self, later: WindowRequest) {
        self.size = later.size.or(self.size);
        self.title = later.title.or(self.title.take());
        self.fullscreen = later.fullscreen.or(self.fullscreen);
        self.cursor_visible = later.cursor_visible.or(self.cursor_visible);
    }
}

/// What Draw has applied.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowProperties {
    /// Size of the target in pixels, as now drawn.
    pub size: (u32, u32),
    /// Title.
    pub title: String,
    /// Fullscreen or not.
    pub fullscreen: bool,
    /// Pointer shown or not.
    pub cursor_visible: bool,
    /// Last frame at which Draw applied a request (0 if never).
    pub changed_at_frame: u64,
}
