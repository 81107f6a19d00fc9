//! Camera controls (issue 13) through the fake camera, whose control set is modelled on a UVC
//! webcam (see tests/fakecam/fakecam.h): `list` and `controls` show them, `controls` and
//! `--control` set them (again after a replug), and `/controls` reads and sets them while
//! viewers keep streaming, with the same bounds and authentication as every other endpoint.
//! Device nodes 74..=79 and 82 are this file's.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fakecam::{cam_cmd, Nodes};
use crate::util::{connect, request, wait_until, MjpegClient, Response, Server};

fn run(env: &[(&str, &str)], args: &[&str]) -> Output {
    cam_cmd(env).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// POST over HTTP/1.1 with a body and any extra header lines (each ending in \r\n).
fn post(addr: SocketAddr, path: &str, ctype: &str, body: &str, extra: &str) -> Response {
    request(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
             {extra}\r\n{body}",
            body.len()
        ),
    )
}

fn form(addr: SocketAddr, body: &str) -> Response {
    post(
        addr,
        "/controls",
        "application/x-www-form-urlencoded",
        body,
        "",
    )
}

/// The control called `name` in a JSON list of controls.
fn control<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

fn json(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

#[test]
fn list_and_its_json_show_each_cameras_controls() {
    let Some(_nodes) = Nodes::make(&[74]) else {
        return;
    };
    let env = [("FAKECAM_DEVICES", "/dev/video74")];
    let o = run(&env, &["list"]);
    let text = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(text.contains("  controls:\n"), "{text}");
    for line in [
        "    brightness (int)  -64..64 step 1  default 0  value 0\n",
        "    focus_absolute (int)  0..250 step 5  default 0  value 0  inactive\n",
        "    focus_automatic_continuous (bool)  0 or 1  default 1  value 1\n",
        "    auto_exposure (menu)  1: Manual Mode, 3: Aperture Priority Mode  default 3  value 3 \
         (Aperture Priority Mode)\n",
        "    power_line_frequency (menu)  0: Disabled, 1: 50 Hz, 2: 60 Hz  default 1  value 1 (50 Hz)\n",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }

    let o = run(&env, &["list", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let controls = &v[0]["controls"];
    let f = control(controls, "focus_absolute");
    assert_eq!(
        (
            &f["type"],
            &f["min"],
            &f["max"],
            &f["step"],
            &f["default"],
            &f["value"],
            &f["inactive"]
        ),
        (
            &"integer".into(),
            &0.into(),
            &250.into(),
            &5.into(),
            &0.into(),
            &0.into(),
            &true.into()
        ),
        "{f}"
    );
    assert_eq!(f["label"], "Focus, Absolute");
    let ae = control(controls, "auto_exposure");
    assert_eq!(ae["type"], "menu");
    assert_eq!(
        ae["menu"],
        serde_json::json!([
            {"value": 1, "name": "Manual Mode"},
            {"value": 3, "name": "Aperture Priority Mode"}
        ])
    );
    assert_eq!(
        control(controls, "white_balance_automatic")["type"],
        "boolean"
    );
}

#[test]
fn the_controls_subcommand_sets_in_order_and_prints_what_the_camera_accepted() {
    let Some(_nodes) = Nodes::make(&[75]) else {
        return;
    };
    let env = [("FAKECAM_DEVICES", "/dev/video75")];
    let o = run(&env, &["controls", "--source", "camera:75"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(
            "exposure_time_absolute (int)  3..2047 step 1  default 250  value 250  inactive"
        ),
        "{}",
        stdout(&o)
    );
    // Autofocus off first, then the focus (rounded to the step by the driver), a menu by name.
    let o = run(
        &env,
        &[
            "controls",
            "--source",
            "camera:75",
            "focus_automatic_continuous=0",
            "Focus, Absolute=103",
            "auto_exposure=manual_mode",
            "exposure_time_absolute=500",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "focus_automatic_continuous=0\nfocus_absolute=105\nauto_exposure=1\nexposure_time_absolute=500\n"
    );
    let o = run(
        &env,
        &[
            "controls",
            "--source",
            "camera:75",
            "--json",
            "power_line_frequency=2",
        ],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(control(&v, "power_line_frequency")["value"], 2, "{v}");
    // The other order: the camera refuses a manual focus while autofocus is on.
    let o = run(
        &env,
        &["controls", "--source", "camera:75", "focus_absolute=40"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "refused control focus_absolute (it is inactive: turn its automatic control off first)"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_names_and_values_are_usage_errors_that_say_what_is_valid() {
    let Some(_nodes) = Nodes::make(&[76]) else {
        return;
    };
    let env = [("FAKECAM_DEVICES", "/dev/video76")];
    let cases: [(&[&str], &str); 6] = [
        (
            &["controls", "--source", "camera:76", "focus=1"],
            "unknown control focus (controls: brightness, contrast, ",
        ),
        (
            &["controls", "--source", "camera:76", "brightness=bright"],
            "control brightness: 'bright' is not an integer",
        ),
        (
            &["serve", "--source", "camera:76", "--control", "focus_absolute=999"],
            "--control focus_absolute=999: control focus_absolute: 999 is out of range (0..250 step 5)",
        ),
        (
            &["snapshot", "--source", "camera:76", "--control", "auto_exposure=2", "-"],
            "'2' is not one of its entries (1: Manual Mode, 3: Aperture Priority Mode)",
        ),
        (
            &["serve", "--source", "pattern", "--control", "brightness=1"],
            "--control needs a camera source; pattern has no controls",
        ),
        (
            &["serve", "--source", "camera:76", "--control", "brightness"],
            "'brightness' is not NAME=VALUE",
        ),
    ];
    for (args, want) in cases {
        let o = run(&env, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    // From the environment too, comma-separated.
    let o = cam_cmd(&env)
        .env("CAMSTREAM_CONTROLS", "brightness=1,nonesuch=2")
        .args(["snapshot", "--source", "camera:76", "-"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown control nonesuch"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn control_flags_apply_at_start_and_again_after_the_camera_returns() {
    let Some(_nodes) = Nodes::make(&[77]) else {
        return;
    };
    let env = [
        ("FAKECAM_DEVICES", "/dev/video77"),
        ("FAKECAM_UNPLUG_AFTER", "40"),
        ("FAKECAM_RETURN_AFTER", "1"),
    ];
    let srv = Server::start_with(
        cam_cmd(&env),
        &[
            "--source",
            "camera:77",
            "--control",
            "focus_automatic_continuous=0",
            "--control",
            "focus_absolute=40,brightness=7",
        ],
    );
    let v = json(&srv.get("/controls"));
    assert_eq!(control(&v, "focus_absolute")["value"], 40, "{v}");
    assert_eq!(control(&v, "focus_absolute")["inactive"], false, "{v}");
    assert_eq!(control(&v, "brightness")["value"], 7, "{v}");
    // A setting made over HTTP is not a --control: the camera forgets it when replugged.
    let r = form(srv.addr, "contrast=10");
    assert_eq!(r.status, 200, "{}", r.text());
    // Someone must watch for frames to flow fast enough to reach the unplug.
    let mut viewer = MjpegClient::open(srv.addr, "/stream", 1).unwrap();
    wait_until("the camera to come back", || {
        viewer.next_part();
        srv.metric("camstream_source_reconnects_total") >= 1.0
            && srv.metric("camstream_source_up") == 1.0
    });
    let v = json(&srv.get("/controls"));
    assert_eq!(
        control(&v, "contrast")["value"],
        32,
        "back at power-on: {v}"
    );
    assert_eq!(control(&v, "focus_absolute")["value"], 40, "{v}");
    assert_eq!(control(&v, "focus_automatic_continuous")["value"], 0, "{v}");
    assert_eq!(control(&v, "brightness")["value"], 7, "{v}");
}

#[test]
fn post_controls_changes_values_while_three_viewers_keep_streaming() {
    let Some(_nodes) = Nodes::make(&[78]) else {
        return;
    };
    let srv = Server::start_with(
        cam_cmd(&[("FAKECAM_DEVICES", "/dev/video78")]),
        &["--source", "camera:78"],
    );
    let addr = srv.addr;
    let watch = Duration::from_millis(2500);
    let viewers: Vec<_> = (0..3)
        .map(|_| {
            let mut c = MjpegClient::open(addr, "/stream", 1).unwrap();
            std::thread::spawn(move || {
                let start = Instant::now();
                let (mut last, mut worst, mut n) = (Instant::now(), Duration::ZERO, 0);
                while start.elapsed() < watch {
                    c.next_part().expect("the stream goes on");
                    worst = worst.max(last.elapsed());
                    last = Instant::now();
                    n += 1;
                }
                (n, worst)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // A form, in order: autofocus off, then the focus.
    let r = form(
        addr,
        "focus_automatic_continuous=0&focus_absolute=62&brightness=20",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    assert_eq!(
        control(&v, "focus_absolute")["value"],
        60,
        "clamped to the step: {v}"
    );
    assert_eq!(control(&v, "brightness")["value"], 20, "{v}");
    // JSON, in the order sent (not sorted: "white…" before "brightness" would not matter, but
    // auto before manual does).
    let r = post(
        addr,
        "/controls",
        "application/json",
        r#"{"white_balance_automatic": false, "white_balance_temperature": 3000, "power_line_frequency": "60 Hz"}"#,
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json(&r);
    assert_eq!(
        control(&v, "white_balance_temperature")["value"],
        3000,
        "{v}"
    );
    assert_eq!(control(&v, "power_line_frequency")["value"], 2, "{v}");
    // Bad requests name the control; the driver's refusal is a conflict with its message.
    let r = form(addr, "nonesuch=1");
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("unknown control nonesuch"),
        "{}",
        r.text()
    );
    let r = form(addr, "brightness=500");
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("control brightness: 500 is out of range"),
        "{}",
        r.text()
    );
    let r = form(addr, "exposure_dynamic_framerate=1");
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text()
            .contains("exposure_dynamic_framerate: Device or resource busy"),
        "{}",
        r.text()
    );
    let r = form(addr, "");
    assert_eq!(r.status, 400, "{}", r.text());
    // Another site's page cannot change the camera with a form (CSRF); this server's own can.
    let ctype = "application/x-www-form-urlencoded";
    let r = post(
        addr,
        "/controls",
        ctype,
        "brightness=1",
        "Origin: http://evil.example\r\n",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let own = "Origin: http://t\r\n";
    assert_eq!(
        post(addr, "/controls", ctype, "brightness=20", own).status,
        200
    );
    assert_eq!(json(&srv.get("/controls")).as_array().unwrap().len(), 10);
    for v in viewers {
        let (n, worst) = v.join().unwrap();
        assert!(n >= 20, "only {n} frames in {watch:?}");
        // The camera runs at 30 fps; a generous bound that a stopped stream would break.
        assert!(worst < Duration::from_millis(700), "a gap of {worst:?}");
    }
    assert_eq!(srv.metric("camstream_control_changes_total"), 7.0);
}

#[test]
fn sources_without_controls_answer_404() {
    let srv = Server::start(&["--source", "pattern"]);
    let r = srv.get("/controls");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("has no controls"), "{}", r.text());
    assert_eq!(form(srv.addr, "brightness=1").status, 404);
}

#[test]
fn controls_always_need_credentials_when_auth_is_on() {
    let srv = crate::util::auth_server(
        "viewer:secret",
        "healthz,metrics,state,snapshot,stream,index",
    );
    assert_eq!(srv.get("/controls").status, 401);
    assert_eq!(form(srv.addr, "brightness=1").status, 401);
    let basic = "Authorization: Basic dmlld2VyOnNlY3JldA==\r\n";
    let r = post(
        srv.addr,
        "/controls",
        "application/x-www-form-urlencoded",
        "brightness=1",
        basic,
    );
    assert_eq!(
        r.status,
        404,
        "authorized, and the pattern has none: {}",
        r.text()
    );
    // --auth-exempt cannot open them.
    let o = crate::util::camstream()
        .args(["serve", "--auth-exempt", "controls"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bodies_are_bounded_and_must_arrive_in_time() {
    let srv = Server::start(&["--source", "pattern", "--header-timeout", "1s"]);
    let big = "x".repeat(5000);
    let r = form(srv.addr, &big);
    assert_eq!(r.status, 413, "{}", r.text());
    // A body announced but sent slowly: 408 once --header-timeout has passed.
    let mut s = connect(srv.addr);
    let t = Instant::now();
    s.write_all(
        b"POST /controls HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 20\r\n\r\nbright",
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let r = crate::util::parse_response(&buf);
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let r = request(
        srv.addr,
        "POST /controls HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 411, "{}", r.text());
}

/// The value of a JavaScript expression in the page.
fn eval(page: &mut crate::page::Browser, expr: &str) -> Value {
    let r = page.call(
        "Runtime.evaluate",
        serde_json::json!({"expression": expr, "returnByValue": true}),
    );
    r["result"]["value"].clone()
}

fn page_until(page: &mut crate::page::Browser, what: &str, expr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while eval(page, expr) != Value::Bool(true) {
        assert!(Instant::now() < deadline, "the page did not show {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_page_has_a_controls_panel_whose_slider_sets_the_camera() {
    let Some(chromium) = crate::util::tool("chromium", "chromium") else {
        return;
    };
    let Some(_nodes) = Nodes::make(&[79]) else {
        return;
    };
    let srv = Server::start_with(
        cam_cmd(&[("FAKECAM_DEVICES", "/dev/video79")]),
        &["--source", "camera:79"],
    );
    let mut page = crate::page::Browser::open(&chromium, &format!("http://{}/", srv.addr));
    page_until(
        &mut page,
        "the controls panel",
        r#"(() => { const d = document.getElementById("controls");
            return !!d && !d.hidden && d.querySelectorAll("label").length === 10; })()"#,
    );
    eval(
        &mut page,
        r#"document.getElementById("controls").open = true"#,
    );
    // Manual focus is greyed out while autofocus is on.
    assert_eq!(
        eval(
            &mut page,
            r#"(() => { const f = document.getElementById("ctl-focus_absolute");
                return f.type === "range" && f.disabled && f.classList.contains("inactive"); })()"#
        ),
        Value::Bool(true)
    );
    assert_eq!(
        eval(
            &mut page,
            r#"document.getElementById("ctl-auto_exposure").tagName"#
        ),
        "SELECT"
    );
    // Moving the slider sets the camera.
    eval(
        &mut page,
        r#"(() => { const b = document.getElementById("ctl-brightness");
            b.value = 30; b.dispatchEvent(new Event("change")); })()"#,
    );
    wait_until("brightness 30 in GET /controls", || {
        control(&json(&srv.get("/controls")), "brightness")["value"] == 30
    });
    // Autofocus off: the panel is redrawn from the answer and the focus slider comes alive.
    eval(
        &mut page,
        r#"document.getElementById("ctl-focus_automatic_continuous").click()"#,
    );
    page_until(
        &mut page,
        "an active focus slider",
        r#"!document.getElementById("ctl-focus_absolute").disabled"#,
    );
    // The panel is below the picture: bring it into the screenshot.
    eval(
        &mut page,
        r#"document.getElementById("controls").scrollIntoView()"#,
    );
    let (w, h, pixels) = page.screenshot("controls");
    assert!(w > 0 && h > 0 && !pixels.is_empty());
    assert_eq!(srv.metric("camstream_control_changes_total"), 2.0);
    page.assert_no_errors();
}

/// Device node 82: a camera that stalls. Control requests wait for the capture thread, which is
/// stuck in a read; they may hold all workers but one, so `/healthz` still answers at once.
#[test]
fn control_requests_to_a_stalled_camera_leave_a_worker_for_everything_else() {
    let Some(_nodes) = Nodes::make(&[82]) else {
        return;
    };
    let env = [
        ("FAKECAM_DEVICES", "/dev/video82"),
        ("FAKECAM_STALL_AFTER", "3"),
        ("FAKECAM_STALL_PERSIST", "1"),
    ];
    let srv = Server::start_with(
        cam_cmd(&env),
        &[
            "--source",
            "camera:82",
            "--timeout",
            "60s",
            "--workers",
            "4",
        ],
    );
    let a = srv.addr;
    // Let it stall: a viewer sees the same frame come back (the idle resend).
    let mut v = MjpegClient::open(a, "/stream", 1).unwrap();
    let mut last = None;
    for _ in 0..40 {
        let ts = v.next_part().unwrap().headers["x-timestamp"].clone();
        if last.as_ref() == Some(&ts) {
            break;
        }
        last = Some(ts);
    }
    let askers: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let r = crate::util::get(a, "/controls");
                // Answered by the capture thread (never, it is stuck), or refused at once.
                assert_eq!(r.status, 503, "{}", r.text());
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(crate::util::get(a, "/healthz").status, 200);
        // A worker held by a control request comes back after 2 s.
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "/healthz waited {:?} behind control requests",
            t.elapsed()
        );
    }
    for t in askers {
        t.join().unwrap();
    }
}
