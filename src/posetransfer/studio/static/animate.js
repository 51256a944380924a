// The studio's Animate tab: upload a driving clip (tracked: skeleton preview), Render with the
// source photo(s), follow the progress, play and download the result (API: studio/animate.py).
"use strict";

const A = {
  track: null,    // /api/animate/track's answer
  job: null,      // the render's id
  meta: null,     // the render's latest status
  polls: 0,
};
window.animate = A;  // for the browser test

(function () {
  const el = (id) => document.getElementById(id);

  function showTab(name) {
    for (const b of document.querySelectorAll(".tabs button")) {
      const on = b.dataset.tab === name;
      b.classList.toggle("active", on);
      el(b.dataset.tab).hidden = !on;
    }
  }
  for (const b of document.querySelectorAll(".tabs button")) b.onclick = () => showTab(b.dataset.tab);

  function status(id, text, isError) {
    el(id).textContent = text;
    el(id).className = isError ? "error" : "";
  }

  function sources() {
    const own = el("animate-sources").files;
    if (own.length) return Array.from(own);
    return (window.studio && window.studio.sourceFiles) ? Array.from(window.studio.sourceFiles) : [];  // the Pose tab's
  }

  async function onVideo() {
    const file = el("video-file").files[0];
    A.track = null;
    el("render").disabled = true;
    el("skeleton-preview").hidden = true;
    el("track-info").textContent = "";
    if (!file) return;
    status("track-status", "tracking the pose in every frame...");
    const body = new FormData();
    body.append("video", file);
    try {
      A.track = await apiJSON("/api/animate/track", { method: "POST", body });
      const img = el("skeleton-preview");
      img.src = A.track.preview;
      img.hidden = false;
      const t = A.track;
      el("track-info").textContent = `${t.frames} frames at ${t.fps.toFixed(1)} fps, ${t.size[0]}x${t.size[1]}` +
        (t.lost ? `, person lost in ${t.lost}` : "") + (t.notes.length ? ` (${t.notes.join("; ")})` : "");
      status("track-status", "tracked");
      el("render").disabled = false;
    } catch (err) {
      status("track-status", err.message, true);
    }
  }

  async function render() {
    if (!A.track) return;
    const files = sources();
    if (!files.length) { status("render-status", "choose a source photo first", true); return; }
    const body = new FormData();
    body.append("track", A.track.id);
    for (const f of files) body.append("source", f);
    if (el("animate-retarget").checked) body.append("retarget", "1");
    if (el("animate-side").checked) body.append("side_by_side", "1");
    body.append("format", el("animate-format").value);
    el("render").disabled = true;
    el("animation").replaceChildren();
    el("download-animation").hidden = true;
    const bar = el("render-progress");
    bar.hidden = false;
    bar.value = 0;
    try {
      const job = await apiJSON("/api/animate/render", { method: "POST", body });
      A.job = job.id;
      bar.max = job.frames;
      status("render-status", "queued");
      await poll(job.id);
    } catch (err) {
      status("render-status", err.message, true);
    } finally {
      el("render").disabled = false;
    }
  }

  async function poll(id) {
    for (;;) {
      const m = await apiJSON(`/api/animate/${id}`);
      A.meta = m;
      A.polls += 1;
      const bar = el("render-progress");
      bar.max = m.frames || 1;
      bar.value = m.frames_done || 0;
      if (m.status === "failed" || m.status === "error") throw new Error(m.error);  // e.g. cut by a restart
      if (m.status === "done") { show(m); return; }
      status("render-status", `${m.status}: ${m.frames_done || 0} / ${m.frames} frames`);
      await new Promise((r) => setTimeout(r, 400));
    }
  }

  function show(m) {
    const media = document.createElement(m.format === "mp4" ? "video" : "img");
    media.id = "animation-result";
    if (m.format === "mp4") { media.controls = true; media.loop = true; media.autoplay = true; media.muted = true; }
    media.src = m.url;
    const f = document.createElement("figure");
    f.appendChild(media);
    const cap = document.createElement("figcaption");
    cap.textContent = `${m.frames} frames, ${m.size[0]}x${m.size[1]}, ${m.fps.toFixed(1)} fps` +
      (m.notes && m.notes.length ? ` (${m.notes.join("; ")})` : "");
    f.appendChild(cap);
    el("animation").appendChild(f);
    const a = el("download-animation");
    a.href = m.url;
    a.hidden = false;
    status("render-status", "done");
  }

  el("video-file").onchange = onVideo;
  el("render").onclick = render;
  apiJSON("/api/info").then((info) => { el("max-video-frames").textContent = info.limits.max_video_frames; }).catch(() => {});
})();
