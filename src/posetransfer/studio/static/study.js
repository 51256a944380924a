// PG2's user study (sec. 4.3): each image is shown for show_ms (1 s), then hidden; the participant
// answers real or generated; the first `practice` answers are not counted (the server knows).
"use strict";
const $ = (id) => document.getElementById(id);
const T = { p: null, index: 0, shownAt: 0, waiting: false };
window.study = T;

function preload(name) {
  const im = new Image();
  im.src = `/api/study/images/${encodeURIComponent(name)}`;
  return im.decode().then(() => im);
}

async function next() {
  const seq = T.p.sequence;
  if (T.index >= seq.length) { $("trial").hidden = true; $("done").hidden = false; localStorage.removeItem("study-participant"); return; }
  const name = seq[T.index];
  const practice = T.index < T.p.practice;
  $("progress").textContent = `${practice ? "practice " : ""}image ${T.index + 1} of ${seq.length}`;
  $("answers").hidden = true;
  let loaded;
  try { loaded = await preload(name); } catch (err) {
    $("status").textContent = `cannot load study image ${name}; reload the page to go on`;
    return;
  }
  const img = $("stimulus");
  img.src = loaded.src;
  img.hidden = false;
  T.shownAt = performance.now();
  setTimeout(() => {  // shown for show_ms, then only the question remains
    img.hidden = true;
    img.removeAttribute("src");
    $("answers").hidden = false;
    T.waiting = true;
  }, T.p.show_ms);
}

async function answer(kind) {
  if (!T.waiting) return;
  T.waiting = false;
  const image = T.p.sequence[T.index];
  try {
    await apiJSON("/api/study/answers", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ participant: T.p.participant, image, answer: kind, ms: Math.round(performance.now() - T.shownAt) }),
    });
    T.index += 1;
    next();
  } catch (err) {
    $("status").textContent = err.message;
    T.waiting = true;
  }
}

async function begin() {
  $("status").textContent = "";
  try {
    const saved = localStorage.getItem("study-participant");
    let p = null;
    if (saved) { try { p = await apiJSON(`/api/study/participants/${saved}`); } catch (e) { p = null; } }
    if (!p) p = await apiJSON("/api/study/participants", { method: "POST" });
    localStorage.setItem("study-participant", p.participant);
    T.p = p; T.index = p.answered;
    $("intro").hidden = true; $("trial").hidden = false;
    next();
  } catch (err) { $("status").textContent = err.message; }
}

$("start").onclick = begin;
$("answer-real").onclick = () => answer("real");
$("answer-generated").onclick = () => answer("generated");
document.addEventListener("keydown", (ev) => {
  if (ev.key === "r" || ev.key === "R") answer("real");
  if (ev.key === "g" || ev.key === "G") answer("generated");
});
apiJSON("/api/study/results").then((r) => {
  $("count").textContent = r.images.real + r.images.generated;
  $("practice").textContent = r.practice;
  $("seconds").textContent = r.show_ms / 1000;
}).catch((err) => { $("status").textContent = err.message; });
