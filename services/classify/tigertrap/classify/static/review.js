// The tigertrap review page: walks a review job's queue (GET /v1/reviews/jobs/{job}/queue),
// shows each detection's frame with its box, the crop enlarged and the model's top-k, and
// records verdicts (POST /v1/reviews/detections/{id}/verdicts). Keyboard first: a key per
// class of the job's class map, n / u for not an animal / unsure, arrows or j / k to move,
// z to undo your last verdict. Other reviewers' verdicts and conflicts are shown.
"use strict";

const KEY_STORAGE = "tigertrap-api-key";
const REVIEWER_STORAGE = "tigertrap-reviewer";
const TIGER_COLOUR = "#ff1f8f";
const BOX_COLOUR = "#18c0ff";
const MAX_FRAME_SIDE = 960;
const CROP_SIDE = 320;
// Keys for classes, in class map order; n, u, j, k and z are kept for the other commands.
const CLASS_KEYS = "1234567890qwertyiopasdfghlxcvbm";
const SPECIAL = { not_an_animal: "n", unsure: "u" };

const $ = (id) => document.getElementById(id);
const state = { job: null, queue: null, position: 0, record: null, keys: {}, undo: [] };

$("api-key").value = localStorage.getItem(KEY_STORAGE) || "";
$("reviewer").value = localStorage.getItem(REVIEWER_STORAGE) || "";

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(path, options = {}) {
  const key = $("api-key").value;
  const headers = { ...(options.headers || {}) };
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    const payload = await response.json().catch(() => ({ detail: response.statusText }));
    throw new Error(`${response.status}: ${payload.detail}`);
  }
  return response;
}

async function loadJobs() {
  const jobs = await (await api("/v1/reviews/jobs")).json();
  const select = $("job");
  select.replaceChildren(...jobs.map((job) => {
    const option = document.createElement("option");
    option.value = job.name;
    option.textContent = `${job.name} (${job.progress.reviewed}/${job.progress.total})`;
    return option;
  }));
  const wanted = new URLSearchParams(location.search).get("job");
  if (wanted) select.value = wanted;
  return jobs;
}

function assignKeys(labels) {
  const keys = {};
  let next = 0;
  for (const label of labels) {
    keys[label] = SPECIAL[label] || CLASS_KEYS[next++] || null;
  }
  return keys;
}

function renderButtons(labels) {
  const box = $("verdicts-buttons");
  box.replaceChildren(...labels.map((label) => {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.label = label;
    const key = state.keys[label];
    if (key) {
      const kbd = document.createElement("kbd");
      kbd.textContent = key;
      button.appendChild(kbd);
    }
    button.append(label.replaceAll("_", " "));
    button.addEventListener("click", () => giveVerdict(label));
    return button;
  }));
}

async function loadQueue() {
  const order = $("order").value;
  state.queue = await (await api(
    `/v1/reviews/jobs/${encodeURIComponent(state.job)}/queue?order=${order}`)).json();
  renderProgress();
}

function renderProgress() {
  const q = state.queue;
  const parts = Object.entries(q.sections).map(
    ([name, c]) => `${name} ${c.reviewed}/${c.total}`);
  const percent = Math.round(100 * q.progress.fraction);
  const here = q.items.length ? `item ${state.position + 1} of ${q.items.length} · ` : "";
  $("progress").textContent = `${here}${parts.join(" · ")} · reviewed ${percent} %`;
}

async function frameBitmap(id) {
  const blob = await (await api(`/v1/reviews/detections/${id}/frame`)).blob();
  return createImageBitmap(blob);
}

function drawFrame(bitmap, record) {
  const canvas = $("frame");
  const scale = Math.min(1, MAX_FRAME_SIDE / Math.max(bitmap.width, bitmap.height));
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const [x, y, w, h] = record.bbox;
  ctx.lineWidth = Math.max(2, Math.round(canvas.width / 200)) * (record.tiger_flag ? 2 : 1);
  ctx.strokeStyle = record.tiger_flag ? TIGER_COLOUR : BOX_COLOUR;
  ctx.strokeRect(x * canvas.width, y * canvas.height, w * canvas.width, h * canvas.height);
}

function drawCrop(bitmap, record) {
  // The box squared and enlarged to CROP_SIDE, so the animal fills the view.
  const [x, y, w, h] = record.bbox;
  const side = Math.max(w * bitmap.width, h * bitmap.height);
  const cx = (x + w / 2) * bitmap.width;
  const cy = (y + h / 2) * bitmap.height;
  const canvas = $("crop");
  canvas.width = CROP_SIDE;
  canvas.height = CROP_SIDE;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, CROP_SIDE, CROP_SIDE);
  ctx.drawImage(bitmap, cx - side / 2, cy - side / 2, side, side, 0, 0, CROP_SIDE, CROP_SIDE);
}

function when(iso) {
  return iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", " UTC");
}

function renderVerdicts(record) {
  const reviewer = $("reviewer").value.trim();
  const mine = record.current.find((v) => v.reviewer === reviewer);
  for (const button of $("verdicts-buttons").children) {
    button.classList.toggle("mine", Boolean(mine) && button.dataset.label === mine.label);
  }
  $("current").replaceChildren(...record.current.map((v) => {
    const item = document.createElement("li");
    item.textContent = `${v.reviewer}: ${v.label} (${when(v.created_at)})`;
    return item;
  }));
  if (!record.current.length) {
    const item = document.createElement("li");
    item.textContent = "no verdict yet";
    $("current").appendChild(item);
  }
  $("history").replaceChildren(...record.history.map((v) => {
    const item = document.createElement("li");
    item.textContent = `${when(v.created_at)} ${v.reviewer}: ${v.label ?? "withdrawn"}`;
    return item;
  }));
  const conflict = $("conflict");
  conflict.hidden = !record.conflict;
  conflict.textContent = record.conflict
    ? "Conflict: " + record.current.map((v) => `${v.reviewer} says ${v.label}`).join(", ")
    : "";
  document.body.dataset.conflict = String(record.conflict);
}

async function show(position) {
  const items = state.queue.items;
  if (!items.length) {
    setStatus("Nothing to review in this job.", false);
    return;
  }
  state.position = Math.max(0, Math.min(items.length - 1, position));
  const item = items[state.position];
  document.body.dataset.state = "loading";
  const record = await (await api(`/v1/reviews/detections/${item.id}`)).json();
  state.record = record;
  const bitmap = await frameBitmap(item.id);
  drawFrame(bitmap, record);
  drawCrop(bitmap, record);
  const badge = $("section-badge");
  badge.textContent = item.section === "qc" ? "quality sample" : item.section;
  badge.className = item.section;
  $("top-k").replaceChildren(...record.top_k.map(([name, score]) => {
    const li = document.createElement("li");
    li.textContent = `${name} ${score.toFixed(2)}`;
    return li;
  }));
  $("where").textContent = `${record.file} · detection ${record.detection_index} · ` +
    `conf ${record.conf.toFixed(2)} · camera ${record.location}`;
  renderVerdicts(record);
  renderProgress();
  document.body.dataset.detection = String(item.id);
  document.body.dataset.state = "shown";
  document.dispatchEvent(new CustomEvent("tigertrap:shown", { detail: item.id }));
}

async function post(id, label) {
  const reviewer = $("reviewer").value.trim();
  const response = await api(`/v1/reviews/detections/${id}/verdicts`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ label, reviewer }),
  });
  return response.json();
}

async function giveVerdict(label) {
  if (!state.record || document.body.dataset.state !== "shown") return;
  const id = state.record.id;
  try {
    document.body.dataset.state = "saving";
    await post(id, label);
    state.undo.push(state.position);
    const item = state.queue.items[state.position];
    await loadQueue();
    const next = state.queue.items.findIndex((entry) => entry.id === item.id) + 1;
    setStatus(`Saved ${label} for detection ${id}.`, false);
    await show(next < state.queue.items.length ? next : state.position);
  } catch (error) {
    setStatus(String(error.message || error), true);
    document.body.dataset.state = "shown";
  }
}

async function undo() {
  if (!state.undo.length || document.body.dataset.state !== "shown") return;
  const position = state.undo.pop();
  const id = state.queue.items[position].id;
  try {
    document.body.dataset.state = "saving";
    await post(id, null);
    await loadQueue();
    setStatus(`Withdrew your verdict on detection ${id}.`, false);
    await show(position);
  } catch (error) {
    setStatus(String(error.message || error), true);
    document.body.dataset.state = "shown";
  }
}

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) return;
  if (event.ctrlKey || event.metaKey || event.altKey || !state.queue) return;
  const key = event.key;
  if (key === "ArrowRight" || key === "j") show(state.position + 1);
  else if (key === "ArrowLeft" || key === "k") show(state.position - 1);
  else if (key === "z") undo();
  else {
    const label = Object.keys(state.keys).find((name) => state.keys[name] === key);
    if (!label) return;
    giveVerdict(label);
  }
  event.preventDefault();
});

$("review-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  localStorage.setItem(KEY_STORAGE, $("api-key").value);
  localStorage.setItem(REVIEWER_STORAGE, $("reviewer").value.trim());
  state.job = $("job").value;
  state.undo = [];
  try {
    await loadQueue();
    state.keys = assignKeys(state.queue.labels);
    renderButtons(state.queue.labels);
    $("review").hidden = false;
    const first = state.queue.items.findIndex((item) => !item.reviewed);
    await show(first >= 0 ? first : 0);
    document.activeElement.blur();
  } catch (error) {
    setStatus(String(error.message || error), true);
    document.body.dataset.state = "error";
  }
});

$("api-key").addEventListener("change", () => {
  localStorage.setItem(KEY_STORAGE, $("api-key").value);
  loadJobs().then(() => setStatus("", false)).catch((error) => setStatus(String(error.message), true));
});

loadJobs().then((jobs) => {
  document.body.dataset.state = "ready";
  if (!jobs.length) setStatus("No review job yet: bring one in with tigertrap review import.", false);
}).catch((error) => {
  setStatus(`${error.message || error} (enter the API key and reload)`, true);
  document.body.dataset.state = "error";
});
