// The tigertrap upload page: sends the chosen images to POST /v1/classify and draws each
// image on a canvas with its detection boxes and labels; tigers in TIGER_COLOUR.
"use strict";

const TIGER_COLOUR = "#ff1f8f";
const ANIMAL_COLOUR = "#18c0ff";
const OTHER_COLOUR = "#9a9a9a";
const MAX_CANVAS_SIDE = 960;
const KEY_STORAGE = "tigertrap-api-key";

const form = document.getElementById("upload-form");
const filesInput = document.getElementById("files");
const modeInput = document.getElementById("mode");
const keyInput = document.getElementById("api-key");
const statusLine = document.getElementById("status");
const results = document.getElementById("results");

keyInput.value = localStorage.getItem(KEY_STORAGE) || "";

function setStatus(text, isError) {
  statusLine.textContent = text;
  statusLine.className = isError ? "error" : "";
}

function boxColour(detection) {
  if (detection.tiger) return TIGER_COLOUR;
  return detection.category === "1" ? ANIMAL_COLOUR : OTHER_COLOUR;
}

function labelOf(detection) {
  if (detection.species.length) {
    const best = detection.species[0];
    return `${best.name} ${best.score.toFixed(2)}`;
  }
  return detection.conf === null ? detection.label : `${detection.label} ${detection.conf.toFixed(2)}`;
}

function drawDetection(ctx, detection, width, height, lineWidth) {
  const [x, y, w, h] = detection.bbox;
  const colour = boxColour(detection);
  ctx.lineWidth = detection.tiger ? lineWidth * 2 : lineWidth;
  ctx.strokeStyle = colour;
  ctx.strokeRect(x * width, y * height, w * width, h * height);
  const text = labelOf(detection);
  const fontSize = Math.max(12, Math.round(width / 40));
  ctx.font = `bold ${fontSize}px sans-serif`;
  const textWidth = ctx.measureText(text).width + 8;
  const top = Math.max(0, y * height - fontSize - 6);
  ctx.fillStyle = colour;
  ctx.fillRect(x * width, top, textWidth, fontSize + 6);
  ctx.fillStyle = "#fff";
  ctx.fillText(text, x * width + 4, top + fontSize);
}

async function renderImage(file, result) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, MAX_CANVAS_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const lineWidth = Math.max(2, Math.round(canvas.width / 200));
  // Draw tigers last so that they are on top.
  const ordered = [...result.detections].sort((a, b) => Number(a.tiger) - Number(b.tiger));
  for (const detection of ordered) {
    drawDetection(ctx, detection, canvas.width, canvas.height, lineWidth);
  }
  const card = document.createElement("article");
  card.className = result.tiger ? "card tiger" : "card";
  card.dataset.tiger = String(result.tiger);
  if (result.tiger) {
    const banner = document.createElement("div");
    banner.className = "tiger-banner";
    banner.textContent = "TIGER";
    card.appendChild(banner);
  }
  const title = document.createElement("h2");
  title.textContent = `${result.file}: ${result.top_species || "no animal found"}`;
  card.append(title, canvas);
  const list = document.createElement("ol");
  for (const detection of result.detections) {
    const item = document.createElement("li");
    const species = detection.species.map((s) => `${s.name} ${s.score.toFixed(2)}`).join(", ");
    item.textContent = `${labelOf(detection)}${species ? ` (${species})` : ""}`;
    list.appendChild(item);
  }
  card.appendChild(list);
  results.appendChild(card);
}

async function classify(files, mode, apiKey) {
  const body = new FormData();
  for (const file of files) body.append("images", file, file.name);
  body.append("mode", mode);
  const headers = apiKey ? { "X-API-Key": apiKey } : {};
  const response = await fetch("/v1/classify", { method: "POST", body, headers });
  const payload = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) throw new Error(`${response.status}: ${payload.detail}`);
  return payload;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const files = Array.from(filesInput.files);
  if (!files.length) return;
  localStorage.setItem(KEY_STORAGE, keyInput.value);
  document.body.dataset.state = "busy";
  results.replaceChildren();
  setStatus(`Classifying ${files.length} image(s)...`, false);
  try {
    const answer = await classify(files, modeInput.value, keyInput.value);
    for (const [index, result] of answer.images.entries()) {
      await renderImage(files[index], result);
    }
    const tigers = answer.images.filter((image) => image.tiger).length;
    setStatus(`${answer.images.length} image(s) classified with ${answer.model}; ` +
              `${tigers} with a tiger.`, false);
    document.body.dataset.state = "done";
  } catch (error) {
    setStatus(String(error.message || error), true);
    document.body.dataset.state = "error";
  }
  document.dispatchEvent(new CustomEvent("tigertrap:rendered",
                                         { detail: document.body.dataset.state }));
});
