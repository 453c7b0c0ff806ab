// "Use my location": the browser's geolocation fills the hidden lat/lng; the address stays as typed.
(function () {
  var button = document.getElementById("locate"), status = document.getElementById("locate-status");
  if (!navigator.geolocation || !button) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    status.textContent = "正在获取位置…";
    navigator.geolocation.getCurrentPosition(function (pos) {
      document.getElementById("lat").value = pos.coords.latitude.toFixed(6);
      document.getElementById("lng").value = pos.coords.longitude.toFixed(6);
      status.textContent = "已附上您的位置（误差约 " + Math.round(pos.coords.accuracy) + " 米）。地点一栏可补充门牌号或地标。";
    }, function () {
      status.textContent = "没能获取位置，请在“地点”一栏填写。";
    }, {enableHighAccuracy: true, timeout: 15000, maximumAge: 60000});
  });
})();
