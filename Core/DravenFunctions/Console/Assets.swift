package import DravenCore

/// The console's stylesheet and script, served by the console itself at content-hashed paths
/// (`/ui/assets/console-<hash>.css`, `.js`) with a year-long immutable cache lifetime: a new
/// version is a new path. No external asset, no build step.
enum Assets {
    /// The first 16 hex digits of the BLAKE2b-256 of each asset, computed on first use.
    static let styleHash = String(Sodium.hashHex(style.utf8).prefix(16))
    static let scriptHash = String(Sodium.hashHex(script.utf8).prefix(16))
    static var stylePath: String { "/ui/assets/console-\(styleHash).css" }
    static var scriptPath: String { "/ui/assets/console-\(scriptHash).js" }

    /// The asset at `name` (`console-<hash>.css` or `.js`) if the hash is the current one.
    static func response(_ name: String) -> Response? {
        let (body, type): (String, String)
        if name == "console-\(styleHash).css" {
            (body, type) = (style, "text/css; charset=utf-8")
        } else if name == "console-\(scriptHash).js" {
            (body, type) = (script, "text/javascript; charset=utf-8")
        } else {
            return nil
        }
        return Response(
            status: 200,
            headers: [("Content-Type", type), ("Cache-Control", "public, max-age=31536000, immutable")],
            body: Array(body.utf8))
    }

    /// Light and dark (prefers-color-scheme), one column below ~34 rem, no external fonts.
    static let style = """
        :root{color-scheme:light dark;--bg:#fafafa;--fg:#1b1b1f;--muted:#5c5c66;--card:#fff;--line:#d8d8de;\
        --ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--run:#0969da;--focus:#0969da}
        @media (prefers-color-scheme:dark){:root{--bg:#111317;--fg:#e6e6ea;--muted:#a0a0ab;--card:#1a1d23;\
        --line:#33363d;--ok:#3fb950;--bad:#f85149;--warn:#d29922;--run:#58a6ff;--focus:#58a6ff}}
        *{box-sizing:border-box}
        body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);\
        color:var(--fg)}
        header,main,footer{max-width:72rem;margin:0 auto;padding:.75rem 1rem}
        header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;justify-content:space-between;\
        border-bottom:1px solid var(--line)}
        header h1{font-size:1.2rem;margin:0}
        header nav{display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
        a{color:var(--run)}
        a:focus,button:focus,input:focus,select:focus{outline:2px solid var(--focus);outline-offset:2px}
        .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(17rem,1fr));gap:.75rem}
        article{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.75rem}
        article h3{margin:0 0 .4rem;font-size:1.05rem}
        dl{margin:0;display:grid;grid-template-columns:max-content 1fr;gap:.15rem .6rem}
        dt{color:var(--muted)}
        dd{margin:0;overflow-wrap:anywhere}
        .state{font-weight:600}
        .s-succeeded{color:var(--ok)}
        .s-failed,.s-timed_out,.s-rejected,.s-expired{color:var(--bad)}
        .s-running,.s-dispatching{color:var(--run)}
        .s-queued,.s-awaiting_approval,.s-pending,.s-cancelled{color:var(--warn)}
        .s-retrying,.s-paused,.s-compensating{color:var(--warn)}
        .s-compensated,.s-skipped{color:var(--muted)}
        .s-compensation_failed{color:var(--bad)}
        svg.graph{max-width:100%;height:auto;display:block;margin:.4rem 0 .75rem}
        .graph rect{fill:var(--card);stroke:var(--line);stroke-width:2}
        .graph text{fill:var(--fg);font:600 13px system-ui,sans-serif}
        .graph text.t{font-weight:400;fill:var(--muted)}
        .graph .edge{fill:none;stroke:var(--muted);stroke-width:1.5}
        .graph marker path{fill:var(--muted)}
        .graph .g-succeeded rect{stroke:var(--ok)}
        .graph .g-failed rect,.graph .g-timed_out rect{stroke:var(--bad);stroke-width:3}
        .graph .g-running rect{stroke:var(--run);stroke-width:3}
        .graph .g-retrying rect,.graph .g-pending rect,.graph .g-cancelled rect{stroke:var(--warn)}
        .graph .g-skipped rect{stroke-dasharray:5 4}
        .columns{display:grid;grid-template-columns:repeat(auto-fit,minmax(16rem,1fr));gap:.75rem}
        .columns ol,ul.runs{list-style:none;padding:0;margin:0;display:grid;gap:.5rem}
        .step h4{margin:0 0 .4rem;font-size:1rem;overflow-wrap:anywhere}
        .step form.stack{margin-top:.5rem}
        .why{color:var(--muted);font-size:.92rem}
        .error{color:var(--bad);font-weight:600}
        form.stack{display:grid;gap:.6rem;max-width:26rem}
        label{font-weight:600}
        input[type=password],input[type=text],select{font:inherit;padding:.45rem;border:1px solid var(--line);\
        border-radius:.35rem;background:var(--card);color:var(--fg);width:100%}
        button{font:inherit;padding:.45rem .9rem;border-radius:.35rem;border:1px solid var(--line);\
        background:var(--run);color:#fff;cursor:pointer}
        button.link{background:none;color:var(--run);border:none;padding:0;text-decoration:underline}
        progress{width:100%}
        time{white-space:nowrap}
        code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}
        .alert{padding:.5rem .75rem;border-radius:.35rem;border:1px solid var(--line);background:var(--card)}
        .alert.ok{border-color:var(--ok)}
        .alert.bad{border-color:var(--bad);color:var(--bad)}
        .buttons{display:flex;gap:.5rem;flex-wrap:wrap}
        button.danger{background:var(--card);color:var(--bad);border-color:var(--bad)}
        .list{display:grid;gap:.75rem}
        .actions .grid>div{background:var(--card);border:1px solid var(--line);border-radius:.5rem;padding:.75rem}
        .actions form.stack{max-width:none}
        ol.timeline{list-style:none;padding:0;margin:0;border-left:2px solid var(--line)}
        ol.timeline li{padding:.3rem 0 .3rem .75rem;overflow-wrap:anywhere}
        ol.timeline .k-refused,ol.timeline .k-notify_failed,ol.timeline .k-dispatch_attempt{color:var(--bad)}
        ol.releases li{margin-bottom:.6rem;overflow-wrap:anywhere}
        .tag{font-size:.8rem;border:1px solid var(--line);border-radius:.25rem;padding:0 .25rem}
        .scroll{overflow-x:auto}
        table{border-collapse:collapse;width:100%}
        th,td{text-align:left;padding:.3rem .4rem;border-bottom:1px solid var(--line);vertical-align:top}
        td{overflow-wrap:anywhere}
        .o-refused{color:var(--bad)}
        form.filters{display:grid;grid-template-columns:repeat(auto-fill,minmax(11rem,1fr));gap:.4rem .75rem;\
        align-items:end;margin-bottom:.75rem}
        form.filters label{display:block}
        form.pager{display:flex;flex-wrap:wrap;gap:.4rem .6rem;align-items:center;margin-bottom:.75rem}
        form.pager input{width:12rem}
        pre.log{max-height:30rem;overflow:auto;margin:.4rem 0 0;padding:.5rem;background:var(--card);\
        border:1px solid var(--line);border-radius:.35rem;font:.85rem/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;\
        white-space:pre-wrap;overflow-wrap:anywhere}
        """

    /// Keeps a page with `data-poll` fresh: every 5 s it asks for it with `If-None-Match` (a 304
    /// when nothing changed) and swaps in the new `<main>` — unless the viewer is typing in one of
    /// its forms (a focused or filled field), so nobody loses a comment; it also counts relative
    /// times and lease countdowns. A job's log (`pre#log-text`) starts scrolled to its end and stays
    /// there across polls unless the viewer scrolled up. The page works the same without it (the
    /// refresh link).
    static let script = """
        "use strict";
        (function () {
          var main = document.querySelector("main[data-poll]");
          function ago(s) {
            var a = Math.abs(s), u = a < 60 ? [a, "s"] : a < 3600 ? [Math.floor(a / 60), "min"]
              : a < 86400 ? [Math.floor(a / 3600), "h"] : [Math.floor(a / 86400), "d"];
            return s >= 0 ? u[0] + " " + u[1] + " ago" : "in " + u[0] + " " + u[1];
          }
          function tick() {
            var now = Date.now() / 1000;
            document.querySelectorAll("time[data-rel]").forEach(function (t) {
              var at = Date.parse(t.getAttribute("datetime")) / 1000;
              if (!isNaN(at)) t.textContent = ago(Math.round(now - at));
            });
          }
          setInterval(tick, 1000);
          function logEnd() { var l = document.getElementById("log-text"); if (l) l.scrollTop = l.scrollHeight; }
          function atLogEnd() {
            var l = document.getElementById("log-text");
            return !l || l.scrollHeight - l.scrollTop - l.clientHeight < 24;
          }
          logEnd();
          if (!main || !window.fetch) return;
          var etag = main.getAttribute("data-etag");
          function busy() {
            var a = document.activeElement;
            if (a && main.contains(a) && a.form) return true;  // a focused form control
            return Array.prototype.some.call(main.querySelectorAll("form[method=post] input[type=text]"), function (i) {
              return i.value !== "";
            });
          }
          function poll() {
            if (busy()) return;
            fetch(main.getAttribute("data-poll"), {headers: {"If-None-Match": etag}, credentials: "same-origin"})
              .then(function (r) {
                if (r.status !== 200) return null;
                etag = r.headers.get("ETag") || etag;
                return r.text();
              })
              .then(function (text) {
                if (!text) return;
                var next = new DOMParser().parseFromString(text, "text/html").querySelector("main[data-poll]");
                if (!next) return;
                var follow = atLogEnd();
                main.innerHTML = next.innerHTML;
                tick();
                if (follow) logEnd();
              })
              .catch(function () {});
          }
          setInterval(poll, 5000);
          document.documentElement.setAttribute("data-live", "1");
        })();
        """
}
