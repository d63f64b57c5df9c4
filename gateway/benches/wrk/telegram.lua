-- wrk script: Telegram updates with the demo channel's secret token, each
-- with its own update_id (so none is a duplicate), spread over 20 000
-- chats, asking "/order <8 digits>" as `switchboard simulate` does.
local counter = 0
local thread_id = 0
local threads = {}
local run = os.time() % 1000000

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Telegram-Bot-Api-Secret-Token"] = os.getenv("SECRET") or "dev-telegram-secret-token"

function request()
  counter = counter + 1
  local n = thread_id * 100000000 + counter
  local chat = 1 + (n * 7919) % 20000
  local body = string.format(
    '{"update_id":%d,"message":{"message_id":%d,"from":{"id":%d,"is_bot":false,"first_name":"Sim","language_code":"en"},'
    .. '"chat":{"id":%d,"type":"private","first_name":"Sim"},"date":1764460800,"text":"/order %d",'
    .. '"entities":[{"type":"bot_command","offset":0,"length":6}]}}',
    run * 1000000000 + n, counter, chat, chat, 10000000 + counter % 90000000)
  return wrk.format(nil, nil, nil, body)
end
