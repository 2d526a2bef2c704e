/* The till's camera: read a QR code (a member's card code, a coupon) from the back camera.
 *
 * The browser's own BarcodeDetector where it has one, else jsQR (vendored) on the video's frames. The camera is
 * stopped as soon as a code is read, the cashier stops it, or the page is left. Where there is no camera, or the
 * cashier (or the browser's policy) refuses it, the promise resolves null with the reason and the cashier types
 * the code instead: nothing here throws. */
"use strict";

window.TillScanner = (function () {
  let active = null;  // {stream, frame, resolve}

  function stop(result) {
    if (!active) return;
    const current = active;
    active = null;
    if (current.frame) cancelAnimationFrame(current.frame);
    current.stream.getTracks().forEach((track) => track.stop());
    const video = document.getElementById("scanner-video");
    video.pause();
    video.srcObject = null;
    document.getElementById("scanner").hidden = true;
    current.resolve(result);
  }

  async function detectorFor() {
    if (!("BarcodeDetector" in window)) return null;
    try {
      const formats = await window.BarcodeDetector.getSupportedFormats();
      return formats.includes("qr_code") ? new window.BarcodeDetector({formats: ["qr_code"]}) : null;
    } catch (e) {
      return null;
    }
  }

  function readWithJsQR(video, canvas) {
    if (!window.jsQR || !video.videoWidth) return null;
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const context = canvas.getContext("2d", {willReadFrequently: true});
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const image = context.getImageData(0, 0, canvas.width, canvas.height);
    const found = window.jsQR(image.data, image.width, image.height, {inversionAttempts: "dontInvert"});
    return found ? found.data : null;
  }

  /** Scan one code. Resolves {code} when read, {reason: "unsupported"|"denied"|"no_camera"|"failed"} when the
   * camera cannot be used, or {reason: "stopped"} when the cashier closed the scanner. */
  async function scan() {
    if (active) stop({reason: "stopped"});
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.isSecureContext) {
      return {reason: "unsupported"};
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({video: {facingMode: "environment"}, audio: false});
    } catch (err) {
      const name = err && err.name;
      if (name === "NotAllowedError" || name === "SecurityError") return {reason: "denied"};
      if (name === "NotFoundError" || name === "OverconstrainedError" || name === "NotReadableError") {
        return {reason: "no_camera"};
      }
      return {reason: "failed"};
    }
    const video = document.getElementById("scanner-video");
    const canvas = document.getElementById("scanner-canvas");
    document.getElementById("scanner").hidden = false;
    video.srcObject = stream;
    const detector = await detectorFor();
    return new Promise((resolve) => {
      active = {stream, frame: null, resolve};
      const session = active;
      video.play().catch(() => {});
      let busy = false;
      const tick = async () => {
        if (active !== session) return;
        if (!busy && video.readyState >= 2) {
          busy = true;
          let code = null;
          try {
            if (detector) {
              const codes = await detector.detect(video);
              code = codes.length ? codes[0].rawValue : null;
            } else {
              code = readWithJsQR(video, canvas);
            }
          } catch (e) {
            code = null;
          }
          busy = false;
          if (code && active === session) {
            stop({code: code.trim()});
            return;
          }
        }
        if (active === session) session.frame = requestAnimationFrame(tick);
      };
      session.frame = requestAnimationFrame(tick);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("scanner-stop");
    if (button) button.addEventListener("click", () => stop({reason: "stopped"}));
  });
  window.addEventListener("pagehide", () => stop({reason: "stopped"}));

  return {scan, stop, isScanning: () => active !== null};
})();
