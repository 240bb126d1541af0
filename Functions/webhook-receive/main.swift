import DravenCore
import DravenFunctions

CGI.serve(WebhookReceive.self)
