import DravenCore

CGI.serve(Heartbeat.self)
