import DravenCore
import DravenFunctions

CGI.serve(Heartbeat.self)
