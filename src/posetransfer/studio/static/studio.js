// The pose studio page: source photo(s), target pose (library / photo / joint editor), Generate.
// Poses are 18 [y, x] pairs in the model's frame, [-1, -1] for a missing joint (the API's format).
"use strict";

const S = {
  info: null,          // /api/info
  size: [256, 176],    // model frame (H, W)
  library: {},         // name -> keypoints
  pose: null,          // the target pose being edited
  sourceFiles: [],     // File objects
  sourcePoses: [],     // keypoints per source (null when none was found)
  sourceFramed: [],    // framed source images (HTMLImageElement)
  selected: -1,        // selected joint
  dragging: -1,
  scale: 3,            // editor pixels per model pixel
};
window.studio = S;     // for the browser test and the curious

const $ = (id) => document.getElementById(id);
const visible = (p) => p[0] >= 0 && p[1] >= 0;
const rgb = (c) => `rgb(${c[0]},${c[1]},${c[2]})`;

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

function drawPose(ctx, kp, scale, radius) {
  const limbs = S.info.limbs, colors = S.info.limb_colors;
  ctx.lineWidth = Math.max(1.5, radius * 0.8);
  limbs.forEach(([a, b], i) => {
    if (!visible(kp[a]) || !visible(kp[b])) return;
    ctx.strokeStyle = rgb(colors[i]);
    ctx.beginPath();
    ctx.moveTo(kp[a][1] * scale, kp[a][0] * scale);
    ctx.lineTo(kp[b][1] * scale, kp[b][0] * scale);
    ctx.stroke();
  });
  kp.forEach((p, j) => {
    if (!visible(p)) return;
    ctx.fillStyle = "#fff";
    ctx.beginPath(); ctx.arc(p[1] * scale, p[0] * scale, radius + 1, 0, 2 * Math.PI); ctx.fill();
    ctx.fillStyle = rgb(colors[j % colors.length]);
    ctx.beginPath(); ctx.arc(p[1] * scale, p[0] * scale, radius, 0, 2 * Math.PI); ctx.fill();
  });
}

function poseCanvas(kp, scale, background) {
  const c = document.createElement("canvas");
  c.width = Math.round(S.size[1] * scale);
  c.height = Math.round(S.size[0] * scale);
  const ctx = c.getContext("2d");
  if (background) { ctx.imageSmoothingEnabled = false; ctx.drawImage(background, 0, 0, c.width, c.height); }
  if (kp) drawPose(ctx, kp, scale, Math.max(2, scale * 1.2));
  return c;
}

function figure(child, caption) {
  const f = document.createElement("figure");
  f.appendChild(child);
  const cap = document.createElement("figcaption");
  cap.textContent = caption;
  f.appendChild(cap);
  return f;
}

function loadImage(src) {
  return new Promise((resolve, reject) => {
    const im = new Image();
    im.onload = () => resolve(im);
    im.onerror = () => reject(new Error("cannot show the image"));
    im.src = src;
  });
}

// -- editor ------------------------------------------------------------------------------------

function setPose(kp, label) {
  S.pose = kp.map((p) => [p[0], p[1]]);
  S.selected = -1;
  document.querySelectorAll("#library figure").forEach((f) => f.classList.toggle("chosen", f.dataset.name === label));
  drawEditor();
}

function drawEditor() {
  const c = $("editor");
  c.width = Math.round(S.size[1] * S.scale);
  c.height = Math.round(S.size[0] * S.scale);
  const ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  if (S.sourceFramed[0]) {  // the source, faded, to place the joints on
    ctx.globalAlpha = 0.35;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(S.sourceFramed[0], 0, 0, c.width, c.height);
    ctx.globalAlpha = 1;
  }
  if (!S.pose) return;
  drawPose(ctx, S.pose, S.scale, 5);
  if (S.selected >= 0 && visible(S.pose[S.selected])) {
    const p = S.pose[S.selected];
    ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.arc(p[1] * S.scale, p[0] * S.scale, 9, 0, 2 * Math.PI); ctx.stroke();
  }
  $("selected").textContent = S.selected >= 0 ? S.info.keypoints[S.selected] : "none";
  const list = $("missing-list");
  list.innerHTML = "";
  S.pose.forEach((p, j) => {
    if (visible(p)) return;
    const o = document.createElement("option");
    o.value = j; o.textContent = S.info.keypoints[j];
    list.appendChild(o);
  });
  $("restore").disabled = list.options.length === 0;
}

function eventPoint(ev) {
  const c = $("editor"), r = c.getBoundingClientRect();
  const x = (ev.clientX - r.left) * (c.width / r.width) / S.scale;
  const y = (ev.clientY - r.top) * (c.height / r.height) / S.scale;
  return [y, x];
}

function nearestJoint(pt) {
  let best = -1, bestD = 14 / S.scale;  // within 14 screen pixels
  S.pose.forEach((p, j) => {
    if (!visible(p)) return;
    const d = Math.hypot(p[0] - pt[0], p[1] - pt[1]);
    if (d < bestD) { best = j; bestD = d; }
  });
  return best;
}

function clampToFrame(pt) {
  return [Math.min(Math.max(pt[0], 0), S.size[0] - 1), Math.min(Math.max(pt[1], 0), S.size[1] - 1)];
}

function setupEditor() {
  const c = $("editor");
  c.addEventListener("pointerdown", (ev) => {
    if (!S.pose) return;
    const j = nearestJoint(eventPoint(ev));
    S.selected = j;
    S.dragging = j;
    if (j >= 0) c.setPointerCapture(ev.pointerId);
    drawEditor();
  });
  c.addEventListener("pointermove", (ev) => {
    if (S.dragging < 0) return;
    const pt = clampToFrame(eventPoint(ev));
    S.pose[S.dragging] = [Math.round(pt[0] * 10) / 10, Math.round(pt[1] * 10) / 10];
    drawEditor();
  });
  const stop = () => { S.dragging = -1; };
  c.addEventListener("pointerup", stop);
  c.addEventListener("pointercancel", stop);

  // Mirror: x -> W-1-x with left and right swapped (posetransfer.pose.transforms.flip_keypoints).
  $("mirror").onclick = () => {
    if (!S.pose) return;
    const w = S.size[1];
    S.pose = S.info.flip.map((src) => visible(S.pose[src]) ? [S.pose[src][0], w - 1 - S.pose[src][1]] : [-1, -1]);
    drawEditor();
  };
  $("missing").onclick = () => {
    if (!S.pose || S.selected < 0) { setStatus("click a joint first", true); return; }
    S.pose[S.selected] = [-1, -1];
    S.selected = -1;
    drawEditor();
  };
  // Bring a joint back where the library's standing pose has it.
  $("restore").onclick = () => {
    const j = parseInt($("missing-list").value, 10);
    if (Number.isNaN(j)) return;
    const ref = S.library.standing_front || Object.values(S.library)[0];
    S.pose[j] = visible(ref[j]) ? [ref[j][0], ref[j][1]] : [S.size[0] / 2, S.size[1] / 2];
    S.selected = j;
    drawEditor();
  };
  $("retarget-now").onclick = async () => {
    if (!S.pose) return;
    const source = S.sourcePoses.find((p) => p);
    if (!source) { setStatus("retargeting needs a source photo with a pose found in it", true); return; }
    try {
      const body = JSON.stringify({ target: S.pose, source: source });
      const out = await apiJSON("/api/retarget", { method: "POST", headers: { "Content-Type": "application/json" }, body });
      setPose(out.keypoints, null);
      setStatus("retargeted to the source's body");
    } catch (err) { setStatus(err.message, true); }
  };
}

// -- sources and pose photos ------------------------------------------------------------------------

async function onSources() {
  const files = Array.from($("source-files").files).slice(0, S.info.model.max_sources);
  S.sourceFiles = files; S.sourcePoses = []; S.sourceFramed = [];
  const box = $("source-previews");
  box.innerHTML = "";
  for (const [i, file] of files.entries()) {
    const fd = new FormData();
    fd.append("image", file);
    try {
      setStatus(`reading source ${i + 1}...`);
      const out = await apiJSON("/api/frame", { method: "POST", body: fd });
      const im = await loadImage(out.framed);
      S.sourcePoses[i] = out.keypoints;
      S.sourceFramed[i] = im;
      const label = out.keypoints ? `source ${i + 1}: framed, with its pose` : `source ${i + 1}: ${out.problem}`;
      box.appendChild(figure(poseCanvas(out.keypoints, 2, im), label));
      setStatus("");
    } catch (err) {
      box.appendChild(figure(document.createElement("canvas"), `source ${i + 1}: ${err.message}`));
      setStatus(err.message, true);
    }
  }
  drawEditor();
}

async function onPosePhoto() {
  const file = $("pose-file").files[0];
  if (!file) return;
  const fd = new FormData();
  fd.append("image", file);
  try {
    setStatus("finding the pose...");
    const out = await apiJSON("/api/pose", { method: "POST", body: fd });
    setPose(out.keypoints, null);
    setStatus("pose taken from the photo");
  } catch (err) { setStatus(err.message, true); }
}

// -- generate and gallery -------------------------------------------------------------------------

function resultUrl(id, name) { return `/api/results/${id}/${name}`; }

async function showResult(meta) {
  const box = $("results");
  box.innerHTML = "";
  const add = async (name, caption) => {
    const im = await loadImage(resultUrl(meta.id, name) + `?t=${Date.now()}`);
    im.height = S.size[0] * 2;
    if (name === "result.png") im.id = "result";
    box.appendChild(figure(im, caption));
  };
  await add("source.png", "source (framed)");
  const pose = poseCanvas(meta.keypoints, 2, null);
  box.appendChild(figure(pose, "target pose"));
  const both = meta.stages.includes("stage1") && meta.stages.includes("stage2");
  if (both) await add("stage1.png", "stage I");
  await add("result.png", both ? "stage II (result)" : "result");
  $("download-image").href = resultUrl(meta.id, "result.png");
  $("download-image").setAttribute("download", `${meta.id}.png`);
  $("download-pose").href = resultUrl(meta.id, "pose.csv");
  $("downloads").hidden = false;
}

async function generate() {
  if (!S.sourceFiles.length) { setStatus("choose a source photo first", true); return; }
  if (!S.pose) { setStatus("choose a target pose first", true); return; }
  const fd = new FormData();
  S.sourceFiles.forEach((f) => fd.append("source", f));
  fd.append("pose", JSON.stringify(S.pose));
  if ($("retarget").checked) {
    fd.append("retarget", "1");
    if (S.sourcePoses[0]) fd.append("source_pose", JSON.stringify(S.sourcePoses[0]));
  }
  const btn = $("generate");
  btn.disabled = true;
  setStatus("generating...");
  try {
    const resp = await api("/api/transfer", { method: "POST", body: fd });
    const id = resp.headers.get("X-Result-Id");
    await resp.blob();
    const metas = (await apiJSON("/api/results")).results;
    const meta = metas.find((m) => m.id === id);
    await showResult(meta);
    renderGallery(metas);
    setStatus("done");
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    btn.disabled = false;
  }
}

function renderGallery(metas) {
  const box = $("gallery");
  box.innerHTML = "";
  for (const m of metas) {
    const im = new Image();
    im.src = resultUrl(m.id, "result.png");
    im.height = S.size[0];
    im.title = `${m.pose}${m.retarget ? ", retargeted" : ""}`;
    im.onclick = () => { showResult(m); setPose(m.keypoints, null); };
    box.appendChild(figure(im, new Date(m.created * 1000).toLocaleTimeString()));
  }
  if (!metas.length) box.textContent = "none yet";
}

async function start() {
  try {
    S.info = await apiJSON("/api/info");
    if (!S.info.model) { $("model-info").textContent = "no model loaded"; return; }
    const m = S.info.model;
    S.size = m.image_size;
    S.scale = Math.max(2, Math.floor(480 / S.size[0]));
    $("model-info").textContent = `${m.task}, ${m.image_size[0]}x${m.image_size[1]}, up to ${m.max_sources} source photo(s)`;
    $("max-sources").textContent = m.max_sources;
    $("study-link").hidden = !S.info.study;
    const lib = await apiJSON("/api/poses");
    const box = $("library");
    for (const p of lib.poses) {
      S.library[p.name] = p.keypoints;
      const f = figure(poseCanvas(p.keypoints, Math.max(1, 128 / S.size[0]), null), p.name);
      f.dataset.name = p.name;
      f.onclick = () => setPose(p.keypoints, p.name);
      box.appendChild(f);
    }
    setupEditor();
    setPose(S.library.standing_front || lib.poses[0].keypoints, "standing_front");
    $("source-files").onchange = onSources;
    $("pose-file").onchange = onPosePhoto;
    $("generate").onclick = generate;
    renderGallery((await apiJSON("/api/results")).results);
    document.body.dataset.ready = "1";
  } catch (err) {
    setStatus(err.message, true);
  }
}

start();
